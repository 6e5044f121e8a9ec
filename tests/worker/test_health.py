"""`redraft worker-health`, the engine container's health check, against liveness keys written as a worker
writes them (worker/run.py): healthy only while this host's worker says ready."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import redis

from tests.support.processes import ROOT, free_port

HOST_WORKER = f"{socket.gethostname()}-4242"  # as a worker names itself by default: host-pid


def health(redis_url: str, *args: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "redraft", "worker-health", "--redis-url", redis_url, *args],
                            cwd=ROOT, check=False, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout.strip() + result.stderr.strip()


def beat(client: redis.Redis, name: str, ready: bool) -> None:
    client.set(f"redraft:engine:worker:{name}", json.dumps({"name": name, "ready": ready}), px=5000)
    client.sadd("redraft:engine:workers", name)


def test_healthy_only_once_this_hosts_worker_is_ready(redis_server):
    with redis.Redis.from_url(redis_server.url) as client:
        assert health(redis_server.url) == (1, f"no live worker on {socket.gethostname()}")
        beat(client, "another-host-1", ready=True)  # some other container's worker
        assert health(redis_server.url)[0] == 1
        beat(client, HOST_WORKER, ready=False)
        assert health(redis_server.url) == (1, f"not ready yet (loading the model or stopping): {HOST_WORKER}")
        beat(client, HOST_WORKER, ready=True)
        assert health(redis_server.url) == (0, f"ready: {HOST_WORKER}")
        assert health(redis_server.url, "--name", "another-host-1") == (0, "ready: another-host-1")
        client.delete(f"redraft:engine:worker:{HOST_WORKER}")  # its TTL ran out: the worker died
        assert health(redis_server.url)[0] == 1


def test_unhealthy_when_redis_is_unreachable():
    code, line = health(f"redis://127.0.0.1:{free_port()}/0")
    assert code == 1 and line.startswith("cannot reach Redis")
