"""`redraft worker`: a GPU engine worker that takes redraft jobs from a Redis stream and streams snapshots back.

With `--engine openai` the jobs go to an OpenAI-compatible server instead (engine/remote/engine.py, torch-free), so
several Redraft servers share one remote engine with the queue's order and fairness.

Several server replicas share one or more workers through Redis's own primitives, nothing home-made: the
jobs stream, a reply stream per job, a cancel key per job and a liveness key per worker (jobs/protocol.py
names them and the fields and events they carry; the server's Redis backend reads them from there too).

A worker keeps the pending entries it holds fresh (XCLAIM ... JUSTID to itself every heartbeat), so only
a dead worker's entries go idle; any worker with a free slot takes those over with XAUTOCLAIM after
`claim_timeout_s`, publishes `retry` and runs the job from the beginning. The outcome is published and the
entry acknowledged in one MULTI, so a job is answered exactly when it leaves the group's pending list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from jobs.protocol import (
    EVENT_FAILED,
    EVENT_OUTCOME,
    EVENT_PROGRESS,
    EVENT_RETRY,
    GROUP,
    cancelled_outcome,
    describe,
    reply_entry,
)
from worker.config import WorkerConfig

__all__ = ["Worker", "WorkerConfig", "run_worker"]

log = logging.getLogger("redraft.worker")

KEPT_DYING = "engine workers kept dying on this job"
# A short redraft run before the worker says it is ready: the first pass allocates, compiles and (on
# CUDA) captures graphs, and a user's job should not pay for that.
# raw text: every model takes it, whatever tasks it declares
WARM_UP_SPEC = {"id": "warm-up", "kind": "complete", "prompt": "Warm up.", "steps": 2, "max_tokens": 1}
HANDED_BACK_IDLE_MS = 24 * 3600 * 1000  # idle enough for any worker's claim timeout
BLOCK_MS = 1000  # XREADGROUP block: how late a stop or a reclaim check may notice

# Refreshes the entries this worker still owns, atomically per entry: a plain XCLAIM would steal an
# entry that another worker has already taken over (while this one was stalled). Returns the kept ids.
_TOUCH = """
local kept = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #entry > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""


@dataclass(eq=False)
class InFlight:
    entry_id: str
    job_id: str
    reply_key: str
    deliveries: int
    is_reclaimed: bool
    task: asyncio.Task | None = None
    generation: object = None
    # Handed back (SIGTERM), taken over by another worker, or Redis lost: publish nothing, acknowledge nothing.
    is_abandoned: bool = False
    is_lost: bool = False  # another worker owns the entry now
    is_settling: bool = False  # its last event and acknowledgement are on the way: no longer refreshed


class Worker:
    def __init__(self, config: WorkerConfig, client: aioredis.Redis):
        self.config = config
        self.client = client
        self.engine = None
        self.is_ready = False
        self.started_at = time.time()
        self.inflight: dict[str, InFlight] = {}  # by stream entry id
        self.stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._claim_cursor = "0-0"
        self._touch = client.register_script(_TOUCH)

    def stop(self) -> None:
        """SIGTERM: take no more jobs; finish or hand back the ones in flight."""
        log.info("stopping: no new jobs; %d in flight", len(self.inflight))
        self.stopping.set()
        self._slot_freed.set()

    async def run(self) -> int:
        heartbeat = asyncio.create_task(self._heartbeat(), name="worker-heartbeat")
        try:
            if not await self._load():
                return 1
            if self.stopping.is_set():
                return 0
            self.is_ready = True
            try:
                await self._beat()  # tell the servers now rather than at the next heartbeat
            except RedisError:
                pass  # the heartbeat reports it and retries
            log.info("worker %s ready: %s", self.config.name, self.engine.status())
            await self._serve()
            await self._drain()
            return 0
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self._unregister()
            if self.engine is not None:
                await self.engine.close()

    async def _load(self) -> bool:
        from engine.api import Engine, EngineConfig

        config = self.config
        if config.engine == "openai":
            return await self._connect()
        try:
            self.engine = await Engine.load(
                EngineConfig(model=config.model, device=config.device, dtype=config.dtype, quantize=config.quantize,
                             kernels=config.kernels, max_batch=config.max_batch)
            )
            generation = self.engine.redraft(WARM_UP_SPEC)
            async for _ in generation:
                pass
            await generation.result()
        except Exception as exc:  # a missing checkpoint, no tokenizer, out of memory...
            log.error("the worker cannot serve: %s", describe(exc))
            return False
        return True

    async def _connect(self) -> bool:
        """--engine openai: no warm-up redraft (nothing here compiles or allocates); /v1/models answering,
        with a model to use, is the check."""
        from engine.api import RemoteEngine

        try:
            self.engine = await RemoteEngine.load(self.config.remote)
        except Exception as exc:  # unreachable, a refused key, no model to choose
            log.error("the worker cannot serve: %s", describe(exc))
            return False
        return True

    def status(self) -> dict:
        engine = self.engine.status() if self.engine is not None else {}
        return {
            "name": self.config.name,
            "ready": self.is_ready and not self.stopping.is_set(),
            "stopping": self.stopping.is_set(),
            "model": engine.get("model", self.config.model),
            # Once the model is loaded: its shown name and what it declares (jobs/tasks.py), which the servers
            # offer and check.
            "model_name": engine.get("model_name"),
            "tasks": engine.get("tasks"),
            "device": engine.get("device"),
            "running": len(self.inflight),
            "max_batch": self.config.max_batch,
            "started_at": self.started_at,
        }

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self._beat()
            except RedisError as exc:
                log.warning("heartbeat failed (will retry): %s", exc)
            await asyncio.sleep(self.config.heartbeat_s)

    async def _beat(self) -> None:
        """Refreshes the liveness key and the idle time of every job this worker still holds."""
        config = self.config
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(config.liveness_key, json.dumps(self.status()), px=int(config.liveness_ttl_s * 1000))
            pipe.sadd(config.workers_key, config.name)
            await pipe.execute()
        held = [job for job in self.inflight.values() if not (job.is_abandoned or job.is_settling)]
        if not held:
            return
        ids = [job.entry_id for job in held]
        kept = {entry.decode() for entry in await self._touch(keys=[config.jobs_key], args=[GROUP, config.name, *ids])}
        for job in held:
            if job.entry_id not in kept and not job.is_settling:
                log.warning("job %s was taken over by another worker (this one stalled); dropping it", job.job_id)
                job.is_lost = True
                self._abandon(job)

    async def _unregister(self) -> None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.config.liveness_key)
                pipe.srem(self.config.workers_key, self.config.name)
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not remove the liveness key (it expires by itself): %s", exc)

    async def _serve(self) -> None:
        """Takes jobs (taken-over ones first) while there are free slots, until stop()."""
        config = self.config
        await self._create_group()
        last_claim = 0.0
        while not self.stopping.is_set():
            free = config.max_batch - len(self.inflight)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                if time.monotonic() - last_claim >= config.heartbeat_s:
                    last_claim = time.monotonic()
                    free -= await self._reclaim(free)
                    if free <= 0:
                        continue
                response = await self.client.xreadgroup(
                    GROUP, config.name, {config.jobs_key: ">"}, count=free, block=BLOCK_MS
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._create_group()  # Redis restarted without its data
                continue
            except RedisError as exc:
                log.warning("reading jobs failed (will retry): %s", exc)
                await asyncio.sleep(config.heartbeat_s)
                continue
            for _, entries in response or []:
                for entry_id, fields in entries:
                    self._start(entry_id.decode(), fields, deliveries=1, is_reclaimed=False)

    async def _create_group(self) -> None:
        while True:
            try:
                await self.client.xgroup_create(self.config.jobs_key, GROUP, id="0", mkstream=True)
                return
            except ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    return
                raise
            except RedisError as exc:
                log.warning("cannot reach Redis (will retry): %s", exc)
                await asyncio.sleep(self.config.heartbeat_s)

    async def _reclaim(self, free: int) -> int:
        """Takes over jobs whose worker died (their entries sat idle past the claim timeout)."""
        config = self.config
        # XAUTOCLAIM scans the pending list like SCAN: carry the cursor on, so that a long list of live
        # workers' entries does not hide a dead one's further along.
        cursor, entries, _ = await self.client.xautoclaim(
            config.jobs_key, GROUP, config.name, int(config.claim_timeout_s * 1000), self._claim_cursor, count=free
        )
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id, _ in entries:
                pipe.xpending_range(config.jobs_key, GROUP, entry_id, entry_id, 1)
            pending = await pipe.execute()
        taken = 0
        for (entry_id, fields), rows in zip(entries, pending, strict=True):
            if not rows:  # acknowledged meanwhile by the worker it was taken from
                continue
            deliveries = rows[0]["times_delivered"]
            taken += 1
            log.warning("took over job %s (delivery %d)", fields.get(b"id", b"?").decode(), deliveries)
            self._start(entry_id.decode(), fields, deliveries, is_reclaimed=True)
        return taken

    def _start(self, entry_id: str, fields: dict, deliveries: int, is_reclaimed: bool) -> None:
        job_id = fields.get(b"id", b"").decode()
        reply_key = fields.get(b"reply", b"").decode() or self.config.reply_key(job_id)
        job = InFlight(entry_id, job_id, reply_key, deliveries, is_reclaimed)
        self.inflight[entry_id] = job
        if self.stopping.is_set():  # came with the last read after stop(): never started, handed back
            job.is_abandoned = True
            return
        job.task = asyncio.create_task(self._run_job(job, fields), name=f"job-{job_id}")
        job.task.add_done_callback(lambda _: self._finished(job))

    def _finished(self, job: InFlight) -> None:
        if not self.stopping.is_set():  # while stopping, _drain still hands back the unfinished ones
            self.inflight.pop(job.entry_id, None)
        self._slot_freed.set()

    def _abandon(self, job: InFlight) -> None:
        job.is_abandoned = True
        if job.generation is not None:
            job.generation.cancel()

    async def _run_job(self, job: InFlight, fields: dict) -> None:
        try:
            await self._execute(job, fields)
        except RedisError as exc:
            # Unacknowledged, the entry goes idle once this task ends and is taken over (by any worker).
            log.error("job %s: lost Redis mid-job, leaving it to be retried: %s", job.job_id, exc)
            self._abandon(job)
        except Exception as exc:
            log.exception("job %s: unexpected failure", job.job_id)
            try:
                await self._finish(job, EVENT_FAILED, {"detail": f"the engine worker failed: {describe(exc)}"})
            except RedisError:
                self._abandon(job)

    async def _execute(self, job: InFlight, fields: dict) -> None:
        from engine.errors import RequestError

        config = self.config
        if job.deliveries > config.max_deliveries:
            await self._finish(job, EVENT_FAILED, {"detail": KEPT_DYING})
            return
        submitted_at = float(fields.get(b"submitted_at") or time.time())
        if await self.client.exists(config.cancel_key(job.job_id)) or time.time() - submitted_at > config.reply_ttl_s:
            # Cancelled (or given up by its server) while queued: nobody waits for a run.
            await self._finish(job, EVENT_OUTCOME, cancelled_outcome())
            return
        if job.is_reclaimed:
            await self._publish(job, EVENT_RETRY, {"delivery": job.deliveries, "worker": config.name})
        try:
            spec = json.loads(fields[b"spec"])
        except (KeyError, ValueError) as exc:
            await self._finish(job, EVENT_FAILED, {"detail": f"bad job entry: {exc}", "rejected": True})
            return
        try:
            job.generation = generation = self.engine.redraft(spec)
        except RequestError as exc:  # the passage does not fit, a bad kind...: the request's fault
            await self._finish(job, EVENT_FAILED, {"detail": str(exc), "rejected": True})
            return
        if job.is_abandoned:  # abandoned while the retry event was on its way
            generation.cancel()
        checked = 0.0
        async for progress in generation:
            if job.is_abandoned:
                continue
            check = time.monotonic() - checked >= config.cancel_poll_s
            if await self._publish(job, EVENT_PROGRESS, progress, check_cancel=check):
                generation.cancel()
            checked = time.monotonic() if check else checked
        try:
            outcome = await generation.result()
        except Exception as exc:  # out of memory, an engine bug: this job fails, the worker serves on
            if not job.is_abandoned:
                await self._finish(job, EVENT_FAILED, {"detail": describe(exc)})
            return
        if not job.is_abandoned:
            await self._finish(job, EVENT_OUTCOME, outcome)

    def _reply(self, pipe, job: InFlight, event: str, data: dict) -> None:
        pipe.xadd(job.reply_key, reply_entry(event, job.deliveries, data), maxlen=self.config.reply_maxlen, approximate=True)
        pipe.pexpire(job.reply_key, int(self.config.reply_ttl_s * 1000))

    async def _publish(self, job: InFlight, event: str, data: dict, check_cancel: bool = False) -> bool:
        """One round trip: the event, the reply stream's expiry and (when due) the cancel flag."""
        async with self.client.pipeline(transaction=False) as pipe:
            self._reply(pipe, job, event, data)
            if check_cancel:
                pipe.exists(self.config.cancel_key(job.job_id))
            replies = await pipe.execute()
        return bool(check_cancel and replies[-1])

    async def _finish(self, job: InFlight, event: str, data: dict) -> None:
        """The last event and the acknowledgement together: answered exactly when no longer pending."""
        config = self.config
        job.is_settling = True
        async with self.client.pipeline(transaction=True) as pipe:
            self._reply(pipe, job, event, data)
            pipe.xack(config.jobs_key, GROUP, job.entry_id)
            pipe.xdel(config.jobs_key, job.entry_id)
            await pipe.execute()
        log.info("job %s: %s", job.job_id, data.get("status", event) if event == EVENT_OUTCOME else data["detail"])

    async def _drain(self) -> None:
        """After stop(): let jobs in flight finish for drain_s, then cancel the rest and hand them back."""
        tasks = [job.task for job in self.inflight.values() if job.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.drain_s)
        for job in self.inflight.values():
            if job.task is not None and not job.task.done():
                self._abandon(job)
        await asyncio.gather(*tasks, return_exceptions=True)
        handed_back = [job for job in self.inflight.values() if job.is_abandoned and not job.is_lost]
        self.inflight.clear()
        if not handed_back:
            return
        # Idle at once, so another worker takes them over on its next check rather than after the claim
        # timeout; RETRYCOUNT undoes this delivery, since a clean hand-back is not a worker dying on it.
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for job in handed_back:
                    pipe.xclaim(
                        self.config.jobs_key, GROUP, self.config.name, 0, [job.entry_id],
                        idle=HANDED_BACK_IDLE_MS, retrycount=job.deliveries - 1, justid=True,
                    )
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not hand back %d job(s); they are taken over after the claim timeout: %s",
                        len(handed_back), exc)
            return
        log.info("handed back %d job(s) to the other workers", len(handed_back))


def run_worker(config: WorkerConfig) -> int:
    """Serves jobs until SIGTERM or SIGINT; the exit status."""
    return asyncio.run(_main(config))


async def _main(config: WorkerConfig) -> int:
    # No socket timeout: reads block up to BLOCK_MS by design (see server/fanout.py on redis-py's
    # timeouts); connecting gives up quickly so that the loops report an unreachable Redis and retry.
    client = aioredis.from_url(config.redis_url, socket_timeout=None, socket_connect_timeout=2.0)
    worker = Worker(config, client)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        return await worker.run()
    finally:
        await client.aclose()
