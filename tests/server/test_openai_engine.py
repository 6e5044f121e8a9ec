"""`redraft serve --engine openai` (and `redraft worker --engine openai`): a real server process whose redrafts
come from tests/support/openai_faults.py on loopback, watched by a real y-websocket client.

Each failure ends the redraft `failed` with the engine's message and leaves the document as it was; the
well-behaved stream merges, shows the streaming preview in the AI peer's state, and undoes.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from jobs.tasks import ALL_TASKS
from server.config import ServerConfig
from tests.support.openai_faults import MODEL, FaultServer
from tests.support.processes import ROOT, RedraftWorker, free_port, wait_until

ORIGINAL = "Intro line. The passage 😀 to be redrafted, over here. Outro line."
PASSAGE = "The passage 😀 to be redrafted, over here."
REPLY = ["A ", "far ", "better ", "passage."]


@pytest.fixture
def faults():
    server = FaultServer()
    server.reply = REPLY
    with server:
        yield server


def start_openai_server(start_server, faults: FaultServer, *args, env: dict | None = None, ready: bool = True):
    server = start_server(extra_args=("--engine", "openai", "--engine-url", faults.url, "--engine-timeout", "2", *args),
                          env=env)
    if ready:
        wait_until(lambda: engine_status(server)["status"] == "ready", 20, "the engine server to be ready")
    return server


def engine_status(server) -> dict:
    return httpx.get(server.http_url + "/healthz").json()["engine"]


def api(server, doc: str, path: str = "") -> str:
    return f"{server.http_url}/api/docs/{doc}/redrafts{path}"


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def start_redraft(server, client, doc: str) -> str:
    start = utf16(ORIGINAL[: ORIGINAL.index(PASSAGE)])
    response = httpx.post(api(server, doc), json={"start_index": start, "end_index": start + utf16(PASSAGE),
                                                   "requester": {"name": "alice", "color": "#ff0000"}})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_status(server, doc: str, redraft_id: str, statuses: tuple[str, ...], timeout: float = 20) -> dict:
    def reached():
        body = httpx.get(api(server, doc, f"/{redraft_id}")).json()
        return body if body["status"] in statuses else None

    return wait_until(reached, timeout, f"redraft {redraft_id} to reach {statuses}", interval=0.05)


def document(py_clients, server, doc: str):
    client = py_clients(server.ws_url, doc, name="alice")
    client.wait_synced()
    client.insert(0, ORIGINAL)
    # a second client syncs from the server's replica: once it has the text, so has the server
    witness = py_clients(server.ws_url, doc)
    witness.wait_synced()
    wait_until(lambda: witness.text == ORIGINAL, 10, "the server to hold the text")
    return client


def ai_entries(client) -> list[dict]:
    return [entry for state in list(client.awareness_states.values()) for entry in (state or {}).get("redrafts", [])]


def test_a_streamed_redraft_merges_shows_its_preview_and_undoes(start_server, py_clients, faults):
    faults.api_key, faults.chunk_delay_s = "sk-test-key", 0.3  # slow enough for the preview to show each chunk
    server = start_openai_server(start_server, faults, env={"REDRAFT_ENGINE_API_KEY": "sk-test-key"})
    status = engine_status(server)
    assert (status["mode"], status["model"], status["context"], status["streaming"]) == ("openai", MODEL, 2048, True)
    # An instruction-following model: the editor offers it every task, under the upstream's own name.
    session = httpx.get(f"{server.http_url}/api/docs/story/session").json()
    assert session["model"] == {"name": MODEL, "tasks": list(ALL_TASKS), "note": ""}
    client = document(py_clients, server, "story")
    redraft_id = start_redraft(server, client, "story")

    def streaming_preview():
        return [e for e in ai_entries(client) if e["id"] == redraft_id and e["status"] == "running"
                and e["progress"].get("streaming") is True and e["text"]] or None

    (entry,) = wait_until(streaming_preview, 10, "a streaming preview in the AI peer's state")
    # the text so far, as one final piece (no denoising: nothing is masked), and its token count
    prefixes = ["".join(REPLY[:n]) for n in range(1, len(REPLY) + 1)]  # one chunk a token
    assert entry["text"] in prefixes and entry["tokens"] == [[entry["text"], 1.0]]
    assert entry["progress"]["step"] == prefixes.index(entry["text"]) + 1
    final = wait_status(server, "story", redraft_id, ("done", "failed"))
    assert final["status"] == "done", final
    assert final["text"] == "A far better passage." and final["progress"]["streaming"] is True
    merged = ORIGINAL.replace(PASSAGE, final["text"])
    wait_until(lambda: client.text == merged, 10, "the merged text at the client")
    (request,) = [r for r in faults.requests if r["path"] == "/v1/chat/completions"]
    prompt = request["body"]["messages"][0]["content"]
    assert f"Passage:\n<<<\n{PASSAGE}\n>>>" in prompt and "Intro line. " in prompt and " Outro line." in prompt
    assert request["headers"]["Authorization"] == "Bearer sk-test-key"

    undo = httpx.post(api(server, "story", f"/{redraft_id}/undo"))
    assert undo.status_code == 200 and undo.json()["status"] == "undone"
    wait_until(lambda: client.text == ORIGINAL, 10, "the original text back at the client")


def failed_redraft(start_server, py_clients, faults, doc: str, *args: str, before_redraft=lambda: None) -> dict:
    """A redraft against the faults server in its current mode: its final view, the document unchanged."""
    server = start_openai_server(start_server, faults, *args)
    client = document(py_clients, server, doc)
    before_redraft()
    redraft_id = start_redraft(server, client, doc)
    final = wait_status(server, doc, redraft_id, ("done", "failed", "cancelled"))
    assert final["status"] == "failed" and final["text"] is None, final
    assert client.text == ORIGINAL  # the server merged nothing, so nothing came over the wire either
    assert 'redraft_redrafts_total{status="failed"} 1.0' in httpx.get(server.http_url + "/metrics").text
    return final


def test_a_refused_connection_fails_the_redraft_with_the_reason(start_server, py_clients, faults):
    final = failed_redraft(start_server, py_clients, faults, "refused", before_redraft=faults.stop)
    refused = f"cannot connect to the engine server at {faults.url}: connection refused"
    assert final["error"] == f"the engine failed: {refused}"


def test_a_500_mid_stream_fails_the_redraft_and_merges_nothing(start_server, py_clients, faults):
    faults.mode = "error_mid_stream"
    final = failed_redraft(start_server, py_clients, faults, "midstream")
    assert final["error"] == ("the engine failed: the engine server failed mid-stream: CUDA error: an illegal memory "
                              "access was encountered (code 500)")


def test_an_upstream_trickling_under_the_timeout_fails_at_the_deadline(start_server, py_clients, faults):
    faults.mode, faults.delay_s = "trickle", 0.5  # never silent for --engine-timeout's 2 s, never finished
    final = failed_redraft(start_server, py_clients, faults, "trickle", "--engine-deadline", "3")
    assert final["error"] == (f"the engine failed: the engine server at {faults.url} did not finish its answer "
                              "within 3 s (--engine-deadline)")


@pytest.mark.parametrize("mode, error", [
    ("html", "the engine server answered text/html; charset=utf-8, not a stream of events (text/event-stream)"),
    ("redirect", "the engine server answered 307 Temporary Redirect, a redirect to http://elsewhere.example/v1/"),
])
def test_an_answer_that_is_not_a_stream_fails_clearly_and_merges_nothing(start_server, py_clients, faults, mode, error):
    faults.mode = mode
    final = failed_redraft(start_server, py_clients, faults, mode)
    assert final["error"].startswith(f"the engine failed: {error}")
    assert len(faults.requests) == 1  # the redirect was not followed


def test_a_password_in_the_engine_url_shows_nowhere(start_server, py_clients, faults):
    url = faults.url.replace("http://", "http://user:hunter2@")
    server = start_server(extra_args=("--engine", "openai", "--engine-url", url, "--engine-timeout", "2",
                                      "--log-level", "info"))  # httpx logs each request at INFO
    wait_until(lambda: engine_status(server)["status"] == "ready", 20, "the engine server to be ready")
    client = document(py_clients, server, "secret")
    wait_status(server, "secret", start_redraft(server, client, "secret"), ("done",))
    assert engine_status(server)["url"] == faults.url
    assert faults.requests[-1]["headers"]["Authorization"] == "Basic dXNlcjpodW50ZXIy"  # user:hunter2
    log_text = server.log_path.read_text()
    assert "HTTP Request: POST" in log_text and "hunter2" not in log_text
    # given as a flag, where `ps` shows it: said once at the start (REDRAFT_ENGINE_URL is the place for it)
    assert log_text.count("--engine-url holds a password, which `ps` shows to every user of this machine: set "
                          "REDRAFT_ENGINE_URL instead") == 1


def test_cancel_closes_the_stream_and_leaves_the_document(start_server, py_clients, faults):
    faults.mode = "hang"
    server = start_openai_server(start_server, faults)
    client = document(py_clients, server, "cancel")
    redraft_id = start_redraft(server, client, "cancel")
    running = wait_status(server, "cancel", redraft_id, ("running",))
    assert running["preview"] == "A " and running["progress"]["streaming"] is True
    assert httpx.delete(api(server, "cancel", f"/{redraft_id}")).json()["status"] == "cancelled"
    assert faults.disconnected.wait(5), "the server kept the upstream stream open"
    final = wait_status(server, "cancel", redraft_id, ("cancelled",))
    assert final["text"] is None and final["error"] == "cancelled by a user"
    assert client.text == ORIGINAL


def test_the_server_waits_for_an_engine_server_that_starts_later(start_server):
    late = FaultServer()  # a server that is not listening yet, on a port of its own
    server = start_openai_server(start_server, late, ready=False)
    try:
        status = wait_until(lambda: engine_status(server)["status"] == "unavailable" and engine_status(server), 10,
                            "the engine to be reported unavailable")
        refused = f"cannot connect to the engine server at {late.url}: connection refused"
        assert status["detail"] == f"{refused} (trying again)"
        late.start()
        wait_until(lambda: engine_status(server)["status"] == "ready", 20, "the engine to connect once it is up")
    finally:
        late.stop()


def test_a_wrong_key_is_reported_on_the_health_check(start_server, faults, tmp_path):
    faults.api_key = "sk-right"
    key_file = tmp_path / "engine-key"
    key_file.write_text("sk-wrong\n")
    server = start_openai_server(start_server, faults, "--engine-api-key-file", str(key_file), ready=False,
                                 env={"REDRAFT_ENGINE_API_KEY": ""})
    status = wait_until(lambda: engine_status(server)["status"] == "unavailable" and engine_status(server), 10,
                        "the refused key to be reported")
    assert "refused the API key (401 Unauthorized" in status["detail"] and "sk-wrong" not in status["detail"]
    assert "sk-wrong" not in (server.log_path.read_text())


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "openai"}, "--engine openai sends redrafts to an OpenAI-compatible server: set --engine-url too"),
    ({"engine": "openai", "engine_url": "gpu-box:8000"}, "engine_url must be an http:// or https:// URL"),
    ({"engine_context": 10}, "engine_context must be 0 (ask the server) or at least 64 tokens, not 10"),
    ({"engine_timeout": 0.0}, "engine_timeout must be positive"),
    ({"engine_deadline": -1.0}, "engine_deadline must be positive, not -1.0"),
    ({"engine_max_concurrency": 0}, "engine_max_concurrency must be at least 1, not 0"),
    ({"engine_api_key_file": "/nonexistent/key"}, "engine_api_key_file: '/nonexistent/key' is not a file"),
])
def test_bad_engine_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServerConfig(**kwargs)


def test_there_is_no_flag_for_the_key_itself():
    assert not [name for name in ServerConfig.__dataclass_fields__ if name.endswith("api_key")]


def test_a_worker_serves_the_queue_through_the_engine_server(tmp_path, redis_server, start_server, py_clients, faults):
    """--engine redis on the server, --engine openai on the worker: no torch anywhere, one upstream stream."""
    remote = ("--engine", "openai", "--engine-url", faults.url, "--engine-timeout", "2")
    worker = RedraftWorker(redis_server.url, tmp_path / "worker", name="remote-1", extra_args=remote).start()
    try:
        server = start_server(extra_args=("--engine", "redis"), redis_url=redis_server.url)
        wait_until(lambda: engine_status(server)["status"] == "ready", 20, "the worker to be seen")
        client = document(py_clients, server, "queued")
        redraft_id = start_redraft(server, client, "queued")
        final = wait_status(server, "queued", redraft_id, ("done", "failed"))
        assert (final["status"], final["text"]) == ("done", "A far better passage."), final
        wait_until(lambda: client.text == ORIGINAL.replace(PASSAGE, final["text"]), 10, "the merged text")
        assert len([r for r in faults.requests if r["path"] == "/v1/chat/completions"]) == 1
        faults.mode = "error_mid_stream"
        failed_id = start_redraft(server, document(py_clients, server, "failing"), "failing")
        failed = wait_status(server, "failing", failed_id, ("done", "failed"))
        assert failed["error"].endswith("the engine server failed mid-stream: CUDA error: an illegal memory access "
                                        "was encountered (code 500)"), failed
    finally:
        worker.stop()


def test_a_worker_that_cannot_reach_the_engine_server_says_why_and_exits(redis_server):
    port = free_port()  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "redraft", "worker", "--redis-url", redis_server.url, "--engine", "openai",
         "--engine-url", f"http://127.0.0.1:{port}/v1", "--engine-timeout", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1, result.stderr
    refused = f"cannot connect to the engine server at http://127.0.0.1:{port}/v1: connection refused"
    assert f"the worker cannot serve: {refused}" in result.stderr
