"""The editor's session and share endpoints: roles, links, and refusals that say why."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.auth import Grant, mint_token, verify_token
from server.config import ServerConfig
from server.share import SHARE_TTL_S

SECRET = "a-test-secret-of-32-characters!!"


@pytest.fixture
def client_for(tmp_path):
    """An in-process app (lifespan included) with or without a secret."""
    clients = []

    def make(secret: str | None) -> TestClient:
        # Without a secret only loopback Hosts are served (server/hosts.py), not TestClient's "testserver".
        base_url = "http://testserver" if secret else "http://localhost"
        client = TestClient(create_app(ServerConfig(data_dir=tmp_path, secret=secret)), base_url=base_url)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def engine_of(client: TestClient) -> dict:
    engine = client.get("/healthz").json()["engine"]
    assert engine["mode"] == "off" and engine["status"] == "off"
    return engine

# --engine off: no model to name, and nothing known that it cannot do (the palette says the engine is off)
NO_MODEL = {"name": None, "tasks": ["rewrite", "shorten", "expand", "fix", "instruct", "continue", "fill"], "note": ""}


def test_session_without_a_secret_is_an_editor(client_for):
    client = client_for(None)
    response = client.get("/api/docs/notes/session")
    assert response.status_code == 200
    assert response.json() == {"doc": "notes", "role": "edit", "name": None, "secret": False,
                               "engine": engine_of(client), "model": NO_MODEL, "ai_client_id_min": 2**53 - 2**32}


@pytest.mark.parametrize("role", ["edit", "read"])
def test_session_reports_the_tokens_role(client_for, role):
    client = client_for(SECRET)
    token = mint_token(SECRET, "notes", role, ttl_s=60)
    by_query = client.get(f"/api/docs/notes/session?token={token}")
    by_header = client.get("/api/docs/notes/session", headers={"Authorization": f"Bearer {token}"})
    expected = {"doc": "notes", "role": role, "name": None, "secret": True, "engine": engine_of(client),
                "model": NO_MODEL, "ai_client_id_min": 2**53 - 2**32}
    assert by_query.status_code == by_header.status_code == 200
    assert by_query.json() == by_header.json() == expected


@pytest.mark.parametrize(
    "token, detail",
    [
        (None, "this server needs a share token: add ?token=... to the address"),
        ("garbage", "the token's signature is not valid for this server"),
        (mint_token(SECRET, "other", "edit", None), "the token is for document 'other', not 'notes'"),
        (mint_token(SECRET, "notes", "edit", 10, now=0), "the token has expired"),
    ],
)
def test_a_bad_token_is_a_401_that_says_why(client_for, token, detail):
    client = client_for(SECRET)
    query = f"?token={token}" if token else ""
    for response in (client.get(f"/api/docs/notes/session{query}"),
                     client.post(f"/api/docs/notes/share{query}", json={"role": "read"})):
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized", "detail": detail}


def test_a_bad_document_name_is_a_400(client_for):
    response = client_for(None).get("/api/docs/bad%20name/session")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_doc_name"


@pytest.mark.parametrize("role", ["edit", "read"])
def test_an_editor_shares_both_kinds(client_for, role):
    client = client_for(SECRET)
    token = mint_token(SECRET, "*", "edit", ttl_s=None)
    before = int(time.time())
    response = client.post(f"/api/docs/notes/share?token={token}", json={"role": role})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "url", "expires_at"}
    assert before + SHARE_TTL_S <= body["expires_at"] <= int(time.time()) + SHARE_TTL_S
    assert verify_token(SECRET, body["token"], "notes") == Grant(role, float(body["expires_at"]))
    assert body["url"] == f"http://testserver/d/notes?token={body['token']}"
    # The link names this document, not the "*" of the grant it came from.
    assert client.get(f"/api/docs/other/session?token={body['token']}").status_code == 401


def test_a_reader_shares_only_read_links(client_for):
    client = client_for(SECRET)
    token = mint_token(SECRET, "notes", "read", ttl_s=None)
    refused = client.post("/api/docs/notes/share", json={"role": "edit"}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "detail": "a read-only link can only share read-only links"}
    allowed = client.post("/api/docs/notes/share", json={"role": "read"}, headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200
    assert verify_token(SECRET, allowed.json()["token"], "notes").role == "read"


def test_a_link_never_outlives_the_grant_it_came_from(client_for):
    client = client_for(SECRET)
    token = mint_token(SECRET, "notes", "edit", ttl_s=120)
    expires_at = verify_token(SECRET, token, "notes").expires_at
    body = client.post(f"/api/docs/notes/share?token={token}", json={"role": "read"}).json()
    assert body["expires_at"] == int(expires_at)
    assert verify_token(SECRET, body["token"], "notes").expires_at == expires_at


def test_a_page_from_another_origin_cannot_make_links(client_for):
    client = client_for(SECRET)
    token = mint_token(SECRET, "notes", "edit", ttl_s=None)
    response = client.post(f"/api/docs/notes/share?token={token}", json={"role": "edit"},
                           headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 403
    assert response.json() == {"error": "origin", "detail": "origin https://elsewhere.example is not allowed"}
    same_site = client.post(f"/api/docs/notes/share?token={token}", json={"role": "edit"},
                            headers={"Origin": "http://testserver"})
    assert same_site.status_code == 200


def test_without_a_secret_there_is_nothing_to_share(client_for):
    response = client_for(None).post("/api/docs/notes/share", json={"role": "edit"})
    assert response.status_code == 409
    assert response.json()["error"] == "no_secret"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b'{"role": "admin"}', 400, "bad_role"),
        (b"[1, 2]", 400, "bad_request"),
        (b"{not json", 400, "bad_request"),
        (b'{"role": "' + b"x" * 5000 + b'"}', 413, "too_large"),
    ],
)
def test_a_malformed_share_request_is_refused(client_for, body, status, code):
    client = client_for(SECRET)
    token = mint_token(SECRET, "notes", "edit", ttl_s=None)
    response = client.post(f"/api/docs/notes/share?token={token}", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == code
