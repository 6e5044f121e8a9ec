"""`--engine redis`: RedisBackend against real `redraft worker` processes (tiny model, CPU) and a real redis-server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import signal
import time
from contextlib import asynccontextmanager

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from jobs.protocol import GROUP
from server.redrafts.backends import EngineFailed, EngineUnavailable
from server.redrafts.redis_backend import NO_WORKER, WORKER_LOST, RedisBackend
from tests.support.processes import RedisServer, RedraftWorker, free_port, wait_until

pytest.importorskip("torch", reason="engine workers need the engine extra (torch)")

from worker.run import KEPT_DYING  # after the skip: a server-only install lacks the engine

# Four canvases of 48 steps (192 snapshots, about 2 s on one CPU thread): long enough to kill a worker
# mid-job. Seeds 4 and 3 are ones whose random tiny model writes no EOS before the last canvas (native noise as
# seeded since engine/runtime/noise.py's SEED_OFFSET).
LONG = {"id": "long", "kind": "rewrite", "passage": "Hello world, this is a test.", "steps": 48, "max_canvases": 4,
        "seed": 4}
OTHER = {"id": "other", "kind": "rewrite", "passage": "A second, different passage here.", "steps": 48,
         "max_canvases": 4, "seed": 3}
SHORT = {"id": "short", "kind": "rewrite", "passage": "Make this better, please: héllo 😀.", "steps": 6, "seed": 11}
FAST_CLAIM = ("--claim-timeout", "2.5")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def worker(redis_url, tmp_path_factory):
    """One worker (batch 2) shared by the tests that leave it running, under the prefix `shared`."""
    process = RedraftWorker(redis_url, tmp_path_factory.mktemp("worker"), name="shared-1", prefix="shared",
                            model="tiny", extra_args=("--max-batch", "2", *FAST_CLAIM)).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def expected():
    """expected(spec) -> (progress dicts, outcome without timings) from the in-process engine, one CPU thread
    like the workers, so that the native RNG makes both placements write the same tokens."""
    import torch

    from engine.api import Engine, EngineConfig
    from engine.weights.checkpoint import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loaded = load_model("tiny", "cpu", torch.float32)
    cache: dict[str, tuple[list[dict], dict]] = {}

    async def run(spec):
        engine = Engine(loaded, EngineConfig(model="tiny", device="cpu", max_batch=2))
        try:
            return await collect(engine.redraft(spec))
        finally:
            await engine.close()

    def get(spec: dict) -> tuple[list[dict], dict]:
        key = json.dumps(spec, sort_keys=True)
        if key not in cache:  # on a thread of its own: the calling test's event loop is running
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                cache[key] = pool.submit(asyncio.run, run(spec)).result()
        return cache[key]

    yield get
    torch.set_num_threads(threads)


async def collect(job) -> tuple[list[dict], dict]:
    progress = [snapshot async for snapshot in job]
    outcome = dict(await job.result())
    outcome.pop("timings")  # wall-clock seconds
    return progress, outcome


@asynccontextmanager
async def connected(redis_url: str, prefix: str, **kwargs):
    backend = RedisBackend(redis_url, prefix, poll_s=0.1, **kwargs)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


async def until_ready(backend: RedisBackend) -> None:
    while backend.status()["status"] != "ready":
        await anyio.sleep(0.05)


def holder(redis_url: str, prefix: str) -> str:
    """The consumer (worker name) holding the only pending job."""
    with redis.Redis.from_url(redis_url) as client:
        (entry,) = client.xpending_range(f"{prefix}:engine:jobs", GROUP, "-", "+", 10)
    return entry["consumer"].decode()


@pytest.mark.anyio
async def test_a_job_gives_what_the_local_engine_gives(redis_url, worker, expected):
    want = expected(SHORT)
    with anyio.fail_after(20):
        async with connected(redis_url, "shared") as backend:
            await until_ready(backend)
            got = await collect(await backend.submit(SHORT))
    assert got == want
    assert got[1]["status"] == "done" and got[1]["steps"] == [6, 6]  # two canvases of 6 steps
    assert [p["step"] for p in got[0]] == [1, 2, 3, 4, 5, 6] * 2


def assert_whole_run(progress: list[dict], outcome: dict, spec: dict) -> None:
    """A finished job's snapshots: every canvas counts its steps from 1 to the outcome's count for it."""
    assert outcome["status"] == "done" and outcome["tokens"] > 0
    canvases = [[p for p in progress if p["canvas_index"] == i] for i in range(len(outcome["steps"]))]
    assert sum(map(len, canvases)) == len(progress) and 1 <= len(canvases) <= spec["max_canvases"]
    for snapshots, steps in zip(canvases, outcome["steps"], strict=True):
        assert [p["step"] for p in snapshots] == list(range(1, steps + 1))
        assert {p["max_steps"] for p in snapshots} == {spec["steps"]}
        assert snapshots[-1]["stopped"] and not any(p["stopped"] for p in snapshots[:-1])
    assert progress[-1]["finished"] and not any(p["finished"] for p in progress[:-1])


@pytest.mark.anyio
async def test_two_jobs_at_once_share_one_worker(redis_url, worker):
    arrivals: dict[str, list[float]] = {"long": [], "other": []}

    async def follow(job):
        progress = []
        async for snapshot in job:
            arrivals[job.id].append(time.monotonic())
            progress.append(snapshot)
        outcome = dict(await job.result())
        outcome.pop("timings")
        return progress, outcome

    with anyio.fail_after(20):
        async with connected(redis_url, "shared") as backend:
            await until_ready(backend)
            jobs = [await backend.submit(LONG), await backend.submit(OTHER)]
            got = await asyncio.gather(*(follow(job) for job in jobs))
    # Not compared token for token with solo runs: which steps the two canvases share depends on timing, and a
    # batch of two rows may round differently from one row (tests/engine checks batching against solo runs).
    for (progress, outcome), spec in zip(got, (LONG, OTHER), strict=True):
        assert_whole_run(progress, outcome, spec)
    # Batched, not one after the other: each job's snapshots arrived while the other's were arriving.
    assert arrivals["other"][0] < arrivals["long"][-1] and arrivals["long"][0] < arrivals["other"][-1]


@pytest.mark.anyio
async def test_cancel_stops_the_job_between_steps(redis_url, worker):
    with anyio.fail_after(20):
        async with connected(redis_url, "shared") as backend:
            await until_ready(backend)
            job = await backend.submit({**LONG, "id": "cancelled"})
            steps = 0
            async for _ in job:
                steps += 1
                if steps == 1:
                    job.cancel()
            outcome = await job.result()
    assert outcome["status"] == "cancelled"
    assert steps < 192  # the whole job is 4 canvases x 48 steps


@pytest.mark.anyio
async def test_a_request_the_engine_refuses_fails_with_its_reason(redis_url, worker):
    with anyio.fail_after(20):
        async with connected(redis_url, "shared") as backend:
            await until_ready(backend)
            job = await backend.submit({"id": "bad", "kind": "poem", "passage": "x"})
            assert [p async for p in job] == []
            with pytest.raises(EngineFailed, match="kind must be one of"):
                await job.result()


@pytest.mark.anyio
async def test_a_job_that_keeps_killing_workers_fails(redis_url, worker):
    """A job already delivered 3 times (each worker died on it) fails at the next take-over, without a run."""
    client = aioredis.from_url(redis_url)
    jobs_key, reply_key = "shared:engine:jobs", "shared:engine:job:deadly"
    entry = {"id": "deadly", "spec": json.dumps({**SHORT, "id": "deadly"}), "reply": reply_key,
             "submitted_at": str(time.time())}
    try:
        with anyio.fail_after(20):
            async with client.pipeline(transaction=True) as pipe:
                # In one MULTI, so the live worker's blocked XREADGROUP cannot take it first: a dead
                # consumer took it, and it has been delivered 3 times, idle for an hour.
                pipe.xadd(jobs_key, entry)
                pipe.xreadgroup(GROUP, "dead", {jobs_key: ">"}, count=1)
                await pipe.execute()
            (pending,) = await client.xpending_range(jobs_key, GROUP, "-", "+", 1)
            await client.xclaim(jobs_key, GROUP, "dead", 0, [pending["message_id"]], idle=3_600_000, retrycount=3,
                                justid=True)
            response = await client.xread({reply_key: "0-0"}, block=15_000)
            assert response, "no event on the reply stream"
            ((_, [(_, fields)]),) = response
            assert {key.decode(): value.decode() for key, value in fields.items()} == {
                "event": "failed", "attempt": "4", "data": json.dumps({"detail": KEPT_DYING})
            }
            assert await client.xpending(jobs_key, GROUP) == {"pending": 0, "min": None, "max": None,
                                                               "consumers": []}
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_no_worker_or_no_redis_means_unavailable(redis_url):
    with anyio.fail_after(10):
        async with connected(redis_url, "nobody") as backend:
            while backend.status()["status"] == "loading":
                await anyio.sleep(0.02)
            assert backend.status() == {"mode": "redis", "status": "unavailable", "detail": NO_WORKER}
            with pytest.raises(EngineUnavailable, match=r"no engine worker is running \(start `redraft worker`\)"):
                await backend.submit(SHORT)
        port = free_port()
        async with connected(f"redis://127.0.0.1:{port}/0", "nobody") as backend:
            while backend.status()["status"] == "loading":
                await anyio.sleep(0.02)
            assert backend.status()["status"] == "unavailable"
            with pytest.raises(EngineUnavailable, match=f"cannot reach Redis at 127.0.0.1:{port}"):
                await backend.submit(SHORT)


@pytest.mark.anyio
async def test_ready_only_after_warm_up_and_sigterm_hands_back(redis_url, tmp_path):
    process = RedraftWorker(redis_url, tmp_path, name="solo", prefix="sigterm", model="tiny",
                            extra_args=("--drain-timeout", "0")).start(wait=False)
    sync = redis.Redis.from_url(redis_url)
    try:
        # Alive but loading first: not ready, and not reading jobs (it has not even joined the group).
        first = wait_until(process.status, 20, "the worker's liveness key")
        assert first["ready"] is False and first["name"] == "solo" and first["max_batch"] == 4
        assert not sync.exists("sigterm:engine:jobs")
        with anyio.fail_after(20):
            async with connected(redis_url, "sigterm") as backend:
                while backend.status()["status"] != "ready":
                    assert backend.status()["status"] in ("loading", "unavailable")
                    await anyio.sleep(0.02)
                assert backend.status()["workers"][0]["name"] == "solo"
                job = await backend.submit({**LONG, "id": "handed-back"})
                await job.__anext__()
                started = time.monotonic()
                assert process.kill(signal.SIGTERM) == 0
                assert time.monotonic() - started < 5
                assert not sync.exists("sigterm:engine:worker:solo")
                assert sync.smembers("sigterm:engine:workers") == set()
                # Not acknowledged but handed back: idle at once, and this delivery not counted.
                (entry,) = sync.xpending_range("sigterm:engine:jobs", GROUP, "-", "+", 10)
                assert entry["times_delivered"] == 0 and entry["time_since_delivered"] > 3_600_000
                assert not job.is_settled
    finally:
        process.kill()
        sync.close()


@pytest.mark.anyio
async def test_a_killed_workers_job_is_retried_on_another(redis_url, tmp_path, expected):
    want = expected(LONG)
    workers = [RedraftWorker(redis_url, tmp_path, name=name, prefix="kill", model="tiny", extra_args=FAST_CLAIM)
               .start(wait=False)
               for name in ("kill-a", "kill-b")]
    try:
        for process in workers:
            process.wait_ready(30)
        with anyio.fail_after(20):
            async with connected(redis_url, "kill") as backend:
                await until_ready(backend)
                job = await backend.submit(LONG)
                before = [await job.__anext__()]
                victim = holder(redis_url, "kill")
                next(p for p in workers if p.name == victim).kill()
                after = [snapshot async for snapshot in job]
                outcome = dict(await job.result())
        outcome.pop("timings")
        retries = [i for i, snapshot in enumerate(after) if snapshot.get("retry")]
        assert len(retries) == 1, "exactly one take-over"
        survivor = next(p.name for p in workers if p.name != victim)
        assert after[retries[0]] == {"step": 0, "max_steps": 0, "canvas_index": 0, "text": "", "tokens": [],
                                     "stopped": False, "finished": False, "retry": True, "attempt": 2,
                                     "worker": survivor}
        # The take-over ran the job from the beginning: from the retry on, exactly the local engine's run.
        assert (after[retries[0] + 1:], outcome) == want
        assert before[0] == want[0][0]
    finally:
        for process in workers:
            process.kill()


@pytest.mark.anyio
async def test_the_only_worker_killed_fails_the_job(redis_url, tmp_path):
    process = RedraftWorker(redis_url, tmp_path, name="only", prefix="lost", model="tiny").start()
    try:
        with anyio.fail_after(20):
            async with connected(redis_url, "lost", stall_s=1.0) as backend:
                await until_ready(backend)
                job = await backend.submit({**LONG, "id": "orphan"})
                await job.__anext__()
                process.kill()
                killed = time.monotonic()
                with pytest.raises(EngineFailed, match=WORKER_LOST):
                    await job.result()
                # The liveness key's TTL (5 s) tells the server the worker is gone, then 1 s without events.
                assert time.monotonic() - killed < 8
                assert backend.status()["detail"] == NO_WORKER
                with redis.Redis.from_url(redis_url) as sync:
                    assert sync.exists("lost:engine:cancel:orphan"), "a later worker must not run it"
    finally:
        process.kill()
