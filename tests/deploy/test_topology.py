"""The compose topology without Docker: a real redis-server, two `redraft serve` and one `redraft worker`
started with the commands and environment that docker-compose.yml gives its `server` and `engine`
services, translated to this machine (loopback ports, the local Redis, the `tiny` model on the CPU), so
that this breaks when compose drifts (a flag dropped, a value nothing reads).

Clients on both servers edit one document and ask for redrafts; one server is killed with SIGKILL and
restarted while its client keeps typing offline and the other server takes a redraft.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx

from server.auth import mint_token
from tests.deploy import compose
from tests.deploy.compose import flag_value, with_flags
from tests.support.processes import (
    ROOT,
    RedisServer,
    RedraftWorker,
    ServerProcess,
    free_port,
    wait_until,
)

SECRET = "topology-test-secret-0123456789"
DOC = "team-notes"
FIRST = "The first paragraph says what we decided, in a few words."
SECOND = "The second paragraph lists who does what next week."
ORIGINAL = f"Meeting notes 😀\n{FIRST}\n{SECOND}\nEnd."
# The container world made local: the GPU and the /models checkpoint become the tiny preset on the CPU.
LOCAL_ENGINE_ENV = {"REDRAFT_MODEL": "tiny", "REDRAFT_DEVICE": "cpu"}


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def health(test: list[str], env: dict, replacements: dict[str, str]) -> int:
    """Runs a compose health check here, its container addresses replaced (`redraft` and `python` being
    this interpreter); its exit status."""
    assert test[0] == "CMD"
    command = []
    for part in test[1:]:
        for container, local in replacements.items():
            part = part.replace(container, local)
        command.append(part)
    command = {"redraft": [sys.executable, "-m", "redraft"], "python": [sys.executable]}[command[0]] + command[1:]
    return subprocess.run(command, cwd=ROOT, env=env, check=False, capture_output=True, timeout=30).returncode


def compose_server(workdir, service: dict, redis_url: str) -> ServerProcess:
    port = free_port()
    command = with_flags(service["command"], {"--host": "127.0.0.1", "--port": str(port), "--redis-url": redis_url})
    assert command[:2] == ["redraft", "serve"]
    return ServerProcess(workdir, extra_args=tuple(command[2:]), env=service["environment"], port=port)


def compose_worker(workdir, service: dict, redis_url: str) -> RedraftWorker:
    command = with_flags(service["command"], {"--redis-url": redis_url})
    assert command[:2] == ["redraft", "worker"]
    # Named as a worker names itself by default (host-pid), which is what the health check looks for.
    return RedraftWorker(redis_url, workdir, name=f"{socket.gethostname()}-compose", model="tiny",
                         extra_args=tuple(command[2:]), env={**service["environment"], **LOCAL_ENGINE_ENV})


def request_redraft(server: ServerProcess, token: str, text: str, passage: str, seed: int) -> httpx.Response:
    start = utf16(text[: text.index(passage)])
    return httpx.post(f"{server.http_url}/api/docs/{DOC}/redrafts", headers={"authorization": f"Bearer {token}"},
                      json={"start_index": start, "end_index": start + utf16(passage), "steps": 8, "seed": seed})


def wait_done(server: ServerProcess, token: str, redraft_id: str) -> dict:
    def settled():
        body = httpx.get(f"{server.http_url}/api/docs/{DOC}/redrafts/{redraft_id}",
                         headers={"authorization": f"Bearer {token}"}).json()
        return body if body["status"] in ("done", "failed") else None

    final = wait_until(settled, 60, f"redraft {redraft_id} to finish", interval=0.05)
    assert final["status"] == "done" and final["text"], final
    return final


def test_two_servers_and_a_worker_as_compose_runs_them_survive_a_killed_server(tmp_path, node_peers):
    spec = compose.resolved(REDRAFT_SECRET=SECRET)["services"]
    store = RedisServer(tmp_path / "redis", persistent=True)  # compose's redis keeps an AOF
    one = compose_server(tmp_path / "one", spec["server"], store.url)
    two = compose_server(tmp_path / "two", spec["server"], store.url)
    worker = compose_worker(tmp_path / "worker", spec["engine"], store.url)
    engine_health = spec["engine"]["healthcheck"]["test"]
    engine_local = {flag_value(spec["engine"]["command"], "--redis-url"): store.url}
    try:
        one.start()
        two.start()
        compose_port = flag_value(spec["server"]["command"], "--port")
        for server in (one, two):
            local = {f"127.0.0.1:{compose_port}": f"127.0.0.1:{server.port}"}
            assert health(spec["server"]["healthcheck"]["test"], server.env, local) == 0
        token = mint_token(SECRET, DOC, "edit", None)
        alice = node_peers(one.ws_url, DOC, params={"token": token}, name="alice")
        bob = node_peers(two.ws_url, DOC, params={"token": token}, name="bob")
        alice.wait_synced()
        bob.wait_synced()
        alice.insert(0, ORIGINAL)
        bob.wait_text(ORIGINAL)

        # Compose starts the servers long before the engine has loaded its model: collaboration works, and
        # a redraft request says why it cannot run yet.
        refused = request_redraft(one, token, ORIGINAL, FIRST, seed=1)
        assert (refused.status_code, refused.json()["error"]) == (503, "engine_unavailable"), refused.text
        assert "no engine worker is running" in refused.json()["detail"]
        assert health(engine_health, worker.env, engine_local) == 1

        worker.start(wait=True, timeout=90)
        assert health(engine_health, worker.env, engine_local) == 0
        for server in (one, two):
            wait_until(lambda url=server.http_url: httpx.get(url + "/healthz").json()["engine"]["status"] == "ready",
                       20, "the servers to see the worker")

        asked = request_redraft(one, token, ORIGINAL, FIRST, seed=1)
        assert asked.status_code == 202, asked.text
        first = wait_done(one, token, asked.json()["id"])
        text = ORIGINAL.replace(FIRST, first["text"])
        alice.wait_text(text)
        bob.wait_text(text)
        bob.insert(utf16(text), " Bob adds a line.")
        text += " Bob adds a line."
        alice.wait_text(text)

        one.kill()  # SIGKILL, mid-session
        alice.insert(0, "Alice, offline: ")  # kept by her client, sent when it reconnects
        asked = request_redraft(two, token, text, SECOND, seed=2)
        assert asked.status_code == 202, asked.text
        second = wait_done(two, token, asked.json()["id"])
        text = text.replace(SECOND, second["text"])
        bob.wait_text(text)
        bob.insert(utf16(text), " Bob, while one was down.")
        text += " Bob, while one was down."

        one.start()  # the same port: alice's client reconnects by itself
        text = "Alice, offline: " + text
        alice.wait_text(text, timeout=20)
        bob.wait_text(text)
        carol = node_peers(one.ws_url, DOC, params={"token": token}, name="carol")
        carol.wait_synced()
        assert carol.text == text
        assert wait_done(one, token, second["id"])["text"] == second["text"]  # either server answers for it
    finally:
        worker.stop()
        for server in (one, two):
            server.stop()
        store.stop()
