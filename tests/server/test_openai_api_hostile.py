"""The /v1 API against a hostile client: bodies too big or too deep, abusive fields, the wrong kind of token,
a foreign Host or Origin, streams opened and never read, a client that leaves mid-stream. The engine is
`--engine openai` over tests/support/openai_faults.py, torch-free and fast; the API does not care which."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from server.auth import mint_engine_token, mint_token
from tests.support.openai_faults import MODEL, FaultServer
from tests.support.processes import ServerProcess, wait_until

SECRET = "h" * 32
HELLO = [{"role": "user", "content": "Say hello."}]
QUEUE_MAX = 3


@pytest.fixture(scope="module")
def faults():
    with FaultServer() as server:
        yield server


def start(tmp_path_factory, name: str, faults: FaultServer, *args: str) -> ServerProcess:
    extra = ("--engine", "openai", "--engine-url", faults.url, "--engine-timeout", "2", "--redraft-queue-max",
             str(QUEUE_MAX), "--redraft-user-per-min", "6000", "--redraft-user-burst", "1000", *args)
    server = ServerProcess(tmp_path_factory.mktemp(name), extra_args=extra).start()
    wait_until(lambda: health(server)["engine"]["status"] == "ready", 20, "the engine server to be ready")
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory, faults):
    server = start(tmp_path_factory, "open", faults)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def well_behaved(faults):
    faults.mode, faults.reply = "ok", ["A ", "better ", "sentence."]
    faults.disconnected.clear()
    faults.stream_started.clear()


def health(server: ServerProcess) -> dict:
    return httpx.get(server.http_url + "/healthz", timeout=5).json()


def post(server: ServerProcess, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) or hasattr(body, "__next__") else json.dumps(body)
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(server.http_url + "/v1/chat/completions", content=content, headers=headers, timeout=10, **kwargs)


def error(response: httpx.Response) -> tuple[int, str | None, str]:
    body = response.json()["error"]
    return response.status_code, body["param"], body["message"]


def test_json_nested_thousands_deep_is_a_bad_request_not_a_server_error(server):
    response = post(server, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("the body is not JSON")


def test_a_chunked_body_without_length_is_cut_at_the_limit(server):
    def body():  # 2 MiB in 64 KiB pieces, no Content-Length: the declared-size check cannot catch it
        for _ in range(32):
            yield b" " * 65536

    response = post(server, body())
    assert error(response) == (413, None, "the request body is over 1048576 bytes")


def test_absurd_numbers_and_stop_strings_are_refused_with_the_field_named(server):
    assert error(post(server, {"model": MODEL, "messages": HELLO, "max_tokens": 10**12})) == (
        400, "max_tokens", "max_tokens is 1000000000000, but this model's context is 2048 tokens, the prompt included")
    assert post(server, b'{"model": "m", "max_tokens": 1' + b"0" * 5000 + b"}").status_code == 400
    # A stop string is matched against the answer's end at every token, at a cost that grows with its square.
    long_stops = {"model": MODEL, "messages": HELLO, "stop": ["ab" * 50_000] * 4}
    assert error(post(server, long_stops)) == (400, "stop", "each stop string must be at most 256 characters")


def test_a_huge_messages_array_is_answered_within_the_body_limit(server, faults):
    many = [{"role": "user", "content": "hi"}] * 25_000  # 0.9 MB of JSON, under the 1 MiB limit
    started = time.monotonic()
    response = post(server, {"model": MODEL, "messages": many, "max_tokens": 8})
    assert response.status_code == 200 and time.monotonic() - started < 5
    assert len(faults.requests[-1]["body"]["messages"]) == 25_000


def test_a_foreign_host_or_a_browser_origin_is_refused_without_a_secret(server):
    assert httpx.get(server.http_url + "/v1/models", headers={"host": "evil.example"}).status_code == 421
    for origin in ("http://evil.example", "null"):
        assert error(post(server, {"model": MODEL, "messages": HELLO}, headers={"origin": origin}))[0] == 403
    # No Host at all (HTTP/1.0) is no browser, so no rebinding page: served, as the rest of the server does.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")


def test_only_a_live_engine_token_of_this_server_opens_the_api(tmp_path_factory, faults):
    server = start(tmp_path_factory, "secured", faults, "--secret", SECRET)
    try:
        def refusal(token: str) -> tuple[int, str]:
            response = post(server, {"model": MODEL, "messages": HELLO}, headers={"authorization": f"Bearer {token}"})
            return response.status_code, response.json()["error"]["message"]

        share = "this is a document share token; the /v1 API needs an engine token (redraft token --engine)"
        assert refusal(mint_token(SECRET, "*", "edit", None)) == (401, share)
        assert refusal(mint_token(SECRET, "notes", "read", 3600)) == (401, share)
        assert refusal(mint_engine_token(SECRET, -10)) == (401, "the token has expired")
        assert refusal(mint_engine_token("x" * 32, None)) == (401, "the token's signature is not valid for this server")
        assert post(server, {"model": MODEL, "messages": HELLO},
                    headers={"authorization": f"Bearer {mint_engine_token(SECRET, 60)}"}).status_code == 200
    finally:
        server.stop()


def open_unread_stream(server: ServerProcess) -> socket.socket:
    """A streaming request on a raw socket that is then never read."""
    body = json.dumps({"model": MODEL, "messages": HELLO, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return sock


def test_streams_opened_and_never_read_are_bounded_by_the_queue_and_cancelled_on_close(server, faults):
    faults.mode = "hang"
    before = health(server)["openai_api"]["cancelled"]
    sockets = [open_unread_stream(server) for _ in range(QUEUE_MAX)]
    try:
        wait_until(lambda: health(server)["openai_api"]["in_flight"] == QUEUE_MAX, 10, "the streams to be taken")
        assert error(post(server, {"model": MODEL, "messages": HELLO}))[0] == 429  # the queue limit holds
    finally:
        for sock in sockets:
            sock.close()
    wait_until(lambda: health(server)["openai_api"] == {"in_flight": 0, "cancelled": before + QUEUE_MAX}, 10,
               "the unread streams' jobs to be cancelled")
    assert faults.disconnected.wait(5)  # and their upstream streams closed


def test_a_client_that_leaves_mid_stream_cancels_its_upstream_stream(server, faults):
    faults.mode = "hang"
    with httpx.stream("POST", server.http_url + "/v1/chat/completions", timeout=10,
                      json={"model": MODEL, "messages": HELLO, "stream": True}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # held: a dropped iterator closes the stream
        assert next(lines).startswith("data: ")
        assert faults.stream_started.wait(5)
    assert faults.disconnected.wait(5), "the server kept the upstream stream open after its client left"
    wait_until(lambda: health(server)["openai_api"]["in_flight"] == 0, 10, "the job to be let go")
