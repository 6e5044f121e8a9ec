"""The Redis engine worker in this process: its flags, and an engine error failing one job, not the worker.

The end-to-end behaviour with real `redraft worker` processes is in tests/server/test_redis_engine.py.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
import redis.asyncio as aioredis

from redraft.cli import build_parser, main
from redraft.worker import config_from_args
from server.redrafts.backends import EngineFailed
from server.redrafts.redis_backend import RedisBackend
from worker.run import Worker, WorkerConfig

SPEC = {"id": "first", "kind": "rewrite", "passage": "Hello there.", "steps": 4, "seed": 5}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_flags_read_the_environment(monkeypatch):
    monkeypatch.setenv("REDRAFT_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("REDRAFT_MAX_BATCH", "3")
    monkeypatch.setenv("REDRAFT_NAME", "gpu-0")
    config = config_from_args(build_parser().parse_args(["worker", "--claim-timeout", "7", "--redis-prefix", "rd"]))
    assert (config.redis_url, config.max_batch, config.name, config.claim_timeout_s, config.prefix) == (
        "redis://example:6380/2", 3, "gpu-0", 7.0, "rd"
    )
    assert config.liveness_key == "rd:engine:worker:gpu-0"


def test_bad_flags_exit_2_with_the_reason(monkeypatch, capsys):
    monkeypatch.delenv("REDRAFT_REDIS_URL", raising=False)
    assert main(["worker"]) == 2
    assert "redis_url is required (--redis-url or REDRAFT_REDIS_URL)" in capsys.readouterr().err
    assert main(["worker", "--redis-url", "redis://x", "--max-batch", "two"]) == 2
    assert "--max-batch: cannot read 'two'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="claim_timeout_s must exceed two heartbeats"):
        WorkerConfig("redis://x", claim_timeout_s=1.5)


@pytest.mark.anyio
async def test_an_engine_error_fails_that_job_and_the_worker_serves_on(redis_server):
    """A failing decoder pass (CUDA out of memory, simulated) fails the job it hit with a clear detail."""
    client = aioredis.from_url(redis_server.url, socket_timeout=None)
    worker = Worker(WorkerConfig(redis_server.url, model="tiny", device="cpu", name="inproc", prefix="t"), client)
    running = asyncio.create_task(worker.run())
    backend = RedisBackend(redis_server.url, "t", poll_s=0.1)
    await backend.start()
    try:
        with anyio.fail_after(30):
            while backend.status()["status"] != "ready":
                await anyio.sleep(0.05)
            model = worker.engine.loaded.model
            decode = model.decode
            calls = {"n": 0}

            def flaky(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 2:
                    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
                return decode(*args, **kwargs)

            model.decode = flaky
            doomed = await backend.submit(SPEC)
            with pytest.raises(EngineFailed, match=r"^the GPU ran out of memory \(CUDA out of memory\. Tried"):
                await doomed.result()
            fine = await backend.submit({**SPEC, "id": "second"})
            assert (await fine.result())["status"] == "done"
            worker.stop()
            assert await running == 0
        assert not await client.exists("t:engine:worker:inproc")
    finally:
        worker.stop()
        await asyncio.gather(running, return_exceptions=True)
        await backend.close()
        await client.aclose()
