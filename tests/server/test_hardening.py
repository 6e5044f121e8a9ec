"""The weaker spots of issue 14 item 9, each tried the way an attacker would: odd tokens, a rebinding Host,
dot names, a content type in capitals, tokens in logs, minted tokens against the per-user limit, empty rooms
and what /healthz tells a stranger."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from tests.support.processes import ServerProcess, wait_until
from tests.support.raw import close_of, last_close_code, open_raw, open_unread, server_text

SECRET = "hardening-test-secret-0123456789"
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_BAD_DOC_NAME = 4404


def signed(claims_json: str) -> str:
    """A token with these claims, signed with the server's secret (as a buggy issuer would make it)."""
    body = base64.urlsafe_b64encode(claims_json.encode()).rstrip(b"=").decode()
    signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
    return body + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    extra = ("--secret", SECRET, "--redraft-user-burst", "2", "--redraft-doc-burst", "100", "--log-level", "info")
    server = ServerProcess(tmp_path_factory.mktemp("secured"), extra_args=extra).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("open")).start()  # no secret: loopback only
    yield server
    server.stop()


@pytest.mark.parametrize("exp", ['"tomorrow"', "[1]", "1" + "0" * 400, "true", "NaN", "1e999"])
def test_a_signed_token_with_a_strange_exp_is_refused_not_a_server_error(secured, exp):
    token = signed('{"doc":"d","role":"edit","exp":%s}' % exp)
    response = httpx.get(f"{secured.http_url}/api/docs/d/session", params={"token": token}, timeout=5)
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
    with open_raw(secured.ws_url, "d", token) as ws:
        assert close_of(ws) == (CLOSE_UNAUTHORIZED, "the token is malformed: exp must be a time in seconds")


def test_without_a_secret_only_loopback_hosts_are_served(open_server):
    """DNS rebinding: evil.example resolved to 127.0.0.1 is same-origin to the browser; its Host tells."""
    url = open_server.http_url + "/api/docs/d/session"
    assert httpx.get(url, headers={"Host": "evil.example:8000"}, timeout=5).status_code == 421
    for host in (f"127.0.0.1:{open_server.port}", f"localhost:{open_server.port}", "[::1]", "app.localhost"):
        assert httpx.get(url, headers={"Host": host}, timeout=5).status_code == 200, host
    with open_unread(open_server.port, "d", host="evil.example") as sock:
        assert last_close_code(sock) == CLOSE_FORBIDDEN_ORIGIN
    assert server_text(open_server.ws_url, "d") == ""  # loopback still served


def test_with_a_secret_any_host_is_served(secured):
    token = signed('{"doc":"d","role":"read"}')
    response = httpx.get(f"{secured.http_url}/api/docs/d/session", params={"token": token},
                         headers={"Host": "redraft.example.org"}, timeout=5)
    assert response.status_code == 200


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused(open_server, name):
    with open_unread(open_server.port, name) as sock:
        assert last_close_code(sock) == CLOSE_BAD_DOC_NAME
    encoded = name.replace(".", "%2E")  # unencoded, the client would fold the dots away
    response = httpx.get(f"{open_server.http_url}/api/docs/{encoded}/session", timeout=5)
    assert (response.status_code, response.json()["error"]) == (400, "bad_doc_name")


def test_json_content_type_is_case_insensitive(open_server):
    response = httpx.post(
        f"{open_server.http_url}/api/docs/never-edited/redrafts",
        content=json.dumps({"start_index": 0, "end_index": 0}),
        headers={"Content-Type": "Application/JSON; charset=UTF-8"},
        timeout=5,
    )
    assert response.json()["error"] != "not_json"
    response = httpx.post(f"{open_server.http_url}/api/docs/never-edited/redrafts", content="{}",
                          headers={"Content-Type": "text/plain"}, timeout=5)
    assert (response.status_code, response.json()["error"]) == (415, "not_json")


def test_tokens_never_reach_the_log(secured):
    token = signed('{"doc":"logged","role":"edit"}')
    httpx.get(f"{secured.http_url}/api/docs/logged/session", params={"token": token}, timeout=5)
    with open_raw(secured.ws_url, "logged", token):
        pass
    signature = token.split(".")[1]
    log = wait_until(lambda: (text := secured.log_path.read_text()).count("token=REDACTED") >= 2 and text, 5,
                     "both requests in the log")
    assert signature not in log and token.split(".")[0] not in log


def test_minting_share_tokens_does_not_multiply_the_per_user_redraft_limit(secured):
    """Anyone with a link can mint more (POST .../share); keyed by token, each new link was a new user."""
    now = int(time.time())
    links = [signed('{"doc":"minted","role":"edit","exp":%d}' % (now + 3600 + i)) for i in range(4)]
    minted = [
        httpx.post(f"{secured.http_url}/api/docs/minted/share", json={"role": "edit"},
                   headers={"Authorization": f"Bearer {link}"}, timeout=5).json()["token"]
        for link in links
    ]
    assert len(set(minted)) == 4
    answers = [
        httpx.post(f"{secured.http_url}/api/docs/minted/redrafts", json={"start_index": 0, "end_index": 0},
                   headers={"Authorization": f"Bearer {token}"}, timeout=5).json()["error"]
        for token in minted
    ]
    # A burst of 2 per user: the first two pass the limit (and find no such document), the rest are refused.
    assert answers == ["unknown_doc", "unknown_doc", "rate_limited", "rate_limited"]


def test_rooms_of_empty_documents_do_not_outlive_their_clients(open_server):
    for i in range(60):
        with open_raw(open_server.ws_url, f"empty-{i}"):
            pass
    rooms = lambda: httpx.get(open_server.http_url + "/healthz", timeout=5).json()["rooms"]  # noqa: E731
    wait_until(lambda: rooms() == 0, 5, "the empty rooms to unload (the grace period is 30 s)")


def test_healthz_does_not_name_the_store_path(open_server):
    response = httpx.get(open_server.http_url + "/healthz", timeout=5)
    assert response.json()["store"] == {"status": "ok", "kind": "sqlite"}
    assert str(open_server.data_dir) not in response.text
