"""`--engine redis`: redrafts run on `redraft worker` processes, reached through a Redis stream.

The wire protocol is jobs/protocol.py's (its docstring lists the keys, fields and events), which the worker
speaks too. A job is one XADD to the jobs stream;
its progress, retry, outcome or failure come back on a reply stream of its own. One reader task serves
every job of this server with a single blocking XREAD over all their reply streams, and one watcher task
keeps the workers' status (so `status()` and `submit()` cost no round trip) and notices jobs whose worker
died with nobody left to take them over.

A `retry` event (another worker took the job over from one that died, and runs it from the beginning) is
yielded as jobs.protocol.retry_progress: a consumer that shows the latest progress resets its preview by
simply showing it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobs import protocol
from jobs.cancel import Cancellation
from jobs.progress_queue import JobStream

from .backends import EngineFailed, EngineRejected, EngineUnavailable
from .engine_model import UNKNOWN, EngineModel, from_status

log = logging.getLogger(__name__)

NO_WORKER = "no engine worker is running (start `redraft worker`)"
WORKER_LOST = "the engine worker was lost and no other worker took the job"
RETRY_S = 0.5


class RedisJob(JobStream):
    """One submitted job: iterate it for progress dicts, await `result()` (the outcome dict, status done or
    cancelled; raises EngineFailed), or `cancel()` it."""

    def __init__(self, backend: "RedisBackend", job_id: str, reply_key: str):
        super().__init__()  # bounded: a worker on --engine openai sends a snapshot a token
        self.backend = backend
        self.id = job_id
        self.reply_key = reply_key
        self.cursor = "0-0"  # read the reply stream from its start: nothing is missed before the first XREAD
        self.attempt = 1  # events of an earlier attempt (a worker thought dead) are ignored
        self.last_event_at = time.monotonic()
        self.cancellation = Cancellation()  # passed on to the worker as the cancel key

    def cancel(self) -> None:
        """Sets the cancel key; the worker polls it between steps."""
        if not self.is_settled and self.cancellation.set():
            self.backend._write_cancel(self.id)


class RedisBackend:
    mode = "redis"

    def __init__(self, redis_url: str, prefix: str = "redraft", *, stall_s: float = 30.0, poll_s: float = 1.0,
                 block_ms: int = 200, job_ttl_s: float = 600.0):
        if stall_s <= 0 or poll_s <= 0 or block_ms < 1 or job_ttl_s <= 0:
            raise ValueError("stall_s, poll_s, block_ms and job_ttl_s must be positive")
        self.redis_url = redis_url
        self.prefix = prefix
        self.stall_s = stall_s  # no event for this long while no worker is alive: the job is lost
        self.poll_s = poll_s  # how often the workers' status is read
        self.block_ms = block_ms  # a job submitted during a blocking read joins the next one this much later
        self.job_ttl_s = job_ttl_s  # of a cancel key (the worker's reply streams expire on their own)
        self.jobs_key = protocol.jobs_key(prefix)
        self.workers_key = protocol.workers_key(prefix)
        self.jobs: dict[str, RedisJob] = {}
        self.workers: list[dict] = []  # the live workers' status, as of the last poll
        # The newest live worker's model and declaration; kept while none is live (the next to start most
        # likely serves the same model), and every task until a worker was seen.
        self.known_model: EngineModel = UNKNOWN
        self.redis_error: str | None = None
        self.client: aioredis.Redis | None = None
        self._is_polled = False
        self._jobs_changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._writes: set[asyncio.Task] = set()

    async def start(self) -> None:
        # No socket timeout, as in server/fanout.py: blocking reads are bounded by block_ms, and a timeout
        # would route every command through asyncio.wait_for, which can swallow close()'s cancel on 3.11.
        self.client = aioredis.from_url(self.redis_url, socket_timeout=None, socket_connect_timeout=2.0)
        self._tasks = [
            asyncio.create_task(self._watch_workers(), name="engine-workers"),
            asyncio.create_task(self._read_replies(), name="engine-replies"),
        ]

    async def close(self) -> None:
        """Cancels this server's jobs on the workers (nobody would read their results) and stops the tasks."""
        for job in list(self.jobs.values()):
            job.cancel()
            job._settle(protocol.cancelled_outcome())
        self.jobs.clear()
        if self._writes:
            await asyncio.wait(self._writes, timeout=2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._writes, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()

    def status(self) -> dict:
        base = {"mode": self.mode}
        if self.redis_error is not None:
            return {**base, "status": "unavailable", "detail": self.redis_error}
        if not self._is_polled:
            return {**base, "status": "loading", "detail": "looking for engine workers"}
        ready = [worker for worker in self.workers if worker.get("ready")]
        if not ready:
            if any(not worker.get("stopping") for worker in self.workers):
                return {**base, "status": "loading", "detail": "an engine worker is loading the model",
                        "workers": self.workers}
            if self.workers:
                return {**base, "status": "unavailable", "detail": "the engine workers are shutting down",
                        "workers": self.workers}
            return {**base, "status": "unavailable", "detail": NO_WORKER}
        return {
            **base,
            "status": "ready",
            "detail": f"{len(ready)} engine worker(s) ready",
            "model": ready[0].get("model"),
            "running": sum(worker.get("running", 0) for worker in ready),
            "max_batch": sum(worker.get("max_batch", 0) for worker in ready),
            "workers": self.workers,
        }

    def model(self) -> EngineModel:
        return self.known_model

    async def submit(self, spec: dict) -> RedisJob:
        status = self.status()
        if status["status"] != "ready":
            raise EngineUnavailable(status["detail"])
        job_id = spec.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise EngineRejected("a redraft spec needs a non-empty string id")
        if job_id in self.jobs:
            raise EngineRejected(f"redraft {job_id} is already running")
        try:
            spec_json = json.dumps(spec)
        except (TypeError, ValueError) as exc:
            raise EngineRejected(f"the redraft spec is not JSON: {exc}") from exc
        reply_key = protocol.reply_key(self.prefix, job_id)
        entry = protocol.job_entry(job_id, spec_json, reply_key, time.time())
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                # A reused id must not read an earlier job's events or inherit its cancellation.
                pipe.delete(reply_key, protocol.cancel_key(self.prefix, job_id))
                pipe.xadd(self.jobs_key, entry)
                await pipe.execute()
        except RedisError as exc:
            raise EngineUnavailable(self._unreachable(exc)) from exc
        job = RedisJob(self, job_id, reply_key)
        self.jobs[job_id] = job
        self._jobs_changed.set()
        return job

    def _unreachable(self, exc: BaseException) -> str:
        where = urlsplit(self.redis_url)
        return f"cannot reach Redis at {where.hostname}:{where.port or 6379}: {exc}"

    def _write_cancel(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._set_cancel(job_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _set_cancel(self, job_id: str) -> None:
        try:
            await self.client.set(protocol.cancel_key(self.prefix, job_id), 1, px=int(self.job_ttl_s * 1000))
        except RedisError as exc:
            log.warning("could not cancel redraft %s: %s", job_id, self._unreachable(exc))

    async def _watch_workers(self) -> None:
        while True:
            try:
                self.workers = await self._read_workers()
                self.redis_error = None
                self._learn_model()
            except RedisError as exc:
                if self.redis_error is None:
                    log.warning("engine: %s", self._unreachable(exc))
                self.redis_error = self._unreachable(exc)
                self.workers = []
            self._is_polled = True
            self._fail_stalled()
            await asyncio.sleep(self.poll_s)

    async def _read_workers(self) -> list[dict]:
        """The live workers' status: names from the set, values from their liveness keys (TTL)."""
        names = sorted(name.decode() for name in await self.client.smembers(self.workers_key))
        if not names:
            return []
        values = await self.client.mget([protocol.liveness_key(self.prefix, name) for name in names])
        dead = [name for name, value in zip(names, values, strict=True) if value is None]
        if dead:  # their keys expired: the worker is gone (a live one re-adds itself every heartbeat)
            await self.client.srem(self.workers_key, *dead)
        workers = []
        for value in values:
            if value is None:
                continue
            try:
                workers.append(json.loads(value))
            except ValueError:
                log.warning("engine: ignoring a worker status that is not JSON: %r", value[:100])
        return workers

    def _learn_model(self) -> None:
        """The model of the newest live worker that has loaded one (a loading worker declares nothing yet): in a
        rolling upgrade, the model the requests will soon all go to."""
        declaring = [(_started_at(worker), from_status(worker)) for worker in self.workers if isinstance(worker, dict)]
        declaring = [(started_at, model) for started_at, model in declaring if model is not None]
        if declaring:
            self.known_model = max(declaring, key=lambda pair: pair[0])[1]

    def _fail_stalled(self) -> None:
        """Fails the jobs that heard nothing for stall_s while no worker is ready to take them over."""
        if any(worker.get("ready") for worker in self.workers):
            return
        now = time.monotonic()
        for job in [job for job in self.jobs.values() if now - job.last_event_at > self.stall_s]:
            log.warning("redraft %s: no event for %.0f s and no engine worker alive", job.id, now - job.last_event_at)
            self._drop(job)
            if job.cancellation.is_set:
                job._settle(protocol.cancelled_outcome())
            else:
                job.cancel()  # a worker that turns up later must not run it for nobody
                job._settle(EngineFailed(self.redis_error or WORKER_LOST))

    def _drop(self, job: RedisJob) -> None:
        self.jobs.pop(job.id, None)
        self._jobs_changed.set()

    async def _read_replies(self) -> None:
        while True:
            if not self.jobs:
                self._jobs_changed.clear()
                await self._jobs_changed.wait()
                continue
            by_key = {job.reply_key.encode(): job for job in self.jobs.values()}
            try:
                response = await self.client.xread(
                    {key: job.cursor for key, job in by_key.items()}, block=self.block_ms
                )
            except RedisError as exc:
                log.warning("engine: reading job events failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            settled = []
            for key, entries in response or []:
                job = by_key.get(key)
                for entry_id, fields in entries:
                    job.cursor = entry_id.decode()
                    self._on_event(job, fields)
                if job.is_settled:
                    settled.append(job)
            for job in settled:
                if self.jobs.get(job.id) is job:
                    self._drop(job)
            if settled:
                await self._forget(settled)

    def _on_event(self, job: RedisJob, fields: dict) -> None:
        try:
            event, attempt, data = protocol.read_reply(fields)
        except (KeyError, ValueError) as exc:
            log.warning("redraft %s: ignoring a malformed event (%s)", job.id, exc)
            return
        if attempt < job.attempt or job.is_settled:
            return
        job.last_event_at = time.monotonic()
        if event == protocol.EVENT_PROGRESS:
            job._push(data)
        elif event == protocol.EVENT_RETRY:
            job.attempt = attempt
            log.info("redraft %s: retried by worker %s (delivery %s)", job.id, data.get("worker"), attempt)
            job._push(protocol.retry_progress(attempt, data.get("worker")))
        elif event == protocol.EVENT_OUTCOME:
            job._settle(data)
        elif event == protocol.EVENT_FAILED:
            job._settle(EngineFailed(data.get("detail") or "the engine failed"))

    async def _forget(self, jobs: list[RedisJob]) -> None:
        """Deletes the reply streams of settled jobs (they would expire anyway)."""
        try:
            await self.client.delete(*(job.reply_key for job in jobs))
        except RedisError:
            pass


def _started_at(worker: dict) -> float:
    started_at = worker.get("started_at")
    return float(started_at) if isinstance(started_at, (int, float)) and not isinstance(started_at, bool) else 0.0

