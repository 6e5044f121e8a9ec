"""The engine's public surface for the server, imported lazily and only when the engine is on.

`Engine` runs the continuous-batching scheduler on a thread of its own, so the denoising loop never
blocks the server's event loop; a request's snapshots arrive as an async iterator. Also the
`redraft generate` command's arguments and entry point.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RequestError
from engine.model.config import DEFAULT_MODEL, check_engine_options
from engine.remote.config import PASSWORD_ON_COMMAND_LINE, password_on_command_line
from engine.remote.engine import RemoteConfig, RemoteEngine, read_api_key  # --engine openai; torch-free (httpx)
from jobs.progress_queue import settle

__all__ = [
    "PASSWORD_ON_COMMAND_LINE", "Engine", "EngineConfig", "Generation", "RemoteConfig", "RemoteEngine",
    "RequestError", "password_on_command_line", "read_api_key",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    model: str = DEFAULT_MODEL  # a preset, a shipped model or a checkpoint directory
    device: str | None = None  # default: cuda when available
    dtype: str | None = None  # default: bfloat16 on cuda, float32 on cpu
    max_batch: int = 4  # canvases per decoder pass
    max_len: int = 4096  # cache slots per row: prompt + committed canvases
    rng: str = "native"
    seed: int = 0  # random weights of the presets
    quantize: str = "none"  # weight format: engine.model.config.QUANTIZE_FORMATS
    kernels: str = "off"  # engine.model.config.KERNEL_MODES: "on" runs the fused Triton kernels (CUDA)

    def __post_init__(self) -> None:
        check_engine_options(self.device, self.dtype, self.quantize, self.kernels)
        if self.max_batch < 1 or self.max_len < 1:
            raise ValueError("max_batch and max_len must be at least 1")


class Generation:
    """One submitted request: iterate it for snapshots, await `result()`, or `cancel()` it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._snapshots: asyncio.Queue = asyncio.Queue()
        self._outcome: asyncio.Future = loop.create_future()
        self.job = None  # set by Engine.submit

    def _on_snapshot(self, snapshot) -> None:  # engine thread
        self._loop.call_soon_threadsafe(self._snapshots.put_nowait, snapshot)

    def _on_done(self, outcome) -> None:  # engine thread
        self._loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome) -> None:
        if settle(self._outcome, outcome):
            self._snapshots.put_nowait(None)

    def cancel(self) -> None:
        """Takes effect between two denoising steps."""
        self.job.cancellation.set()

    def __aiter__(self):
        return self

    async def __anext__(self):
        snapshot = await self._snapshots.get()
        if snapshot is None:
            raise StopAsyncIteration
        return snapshot

    async def result(self):
        """The final Result (status done or cancelled); raises the engine's error if it failed."""
        return await self._outcome


class Engine:
    def __init__(self, loaded, config: EngineConfig):
        from engine.runtime.scheduler import Scheduler

        self.loaded = loaded
        self.config = config
        self.scheduler = Scheduler(loaded.model, loaded.generation, config.max_batch, config.max_len, config.rng)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="redraft-engine", daemon=True)
        self._thread.start()

    @classmethod
    async def load(cls, config: EngineConfig) -> "Engine":
        """Loads the model off the event loop (a checkpoint takes minutes) and starts the engine thread."""
        import torch

        from engine.runtime.ops import enable as enable_kernels
        from engine.weights.checkpoint import load_model

        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, config.dtype or ("bfloat16" if device == "cuda" else "float32"))
        loaded = await asyncio.to_thread(load_model, config.model, device, dtype, config.seed, config.quantize)
        enable_kernels(loaded.model, device, config.kernels)
        return cls(loaded, config)

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    def submit(self, request, on_snapshot=None, on_done=None) -> Generation:
        """Queues a request; raises RequestError at once (nothing queued) when it cannot run.
        on_snapshot / on_done (engine thread) map the scheduler's objects before they reach the loop."""
        from engine.runtime.scheduler import Job

        if self._closing:
            raise RuntimeError("the engine is shutting down")
        self.scheduler.check(request)
        generation = Generation(asyncio.get_running_loop())
        snapshot_to_loop, done_to_loop = generation._on_snapshot, generation._on_done
        job = Job(
            request,
            (lambda snapshot: snapshot_to_loop(on_snapshot(job, snapshot))) if on_snapshot else snapshot_to_loop,
            (lambda outcome: done_to_loop(on_done(job, outcome))) if on_done else done_to_loop,
        )
        generation.job = job
        self._inbox.put(job)
        self._wake.set()
        return generation

    def redraft(self, spec: dict) -> Generation:
        """A text redraft (see engine.runtime.redrafts): snapshots and the result arrive as JSON-able dicts."""
        from engine.runtime import redrafts

        parsed = redrafts.RedraftSpec.from_dict(spec)
        request = redrafts.build_request(
            parsed, self.tokenizer, self.loaded.args, self.scheduler.max_len, self.loaded.tasks, self.loaded.lexicon
        )
        decoder, limit, canvas = self._decoder, redrafts.OutputLimit.of(parsed), self.loaded.args.canvas_length
        stopped_early = threading.Event()

        def on_snapshot(job, snapshot):
            # The scheduler appends a canvas to the result before it publishes the step that stopped it: only
            # the canvases before this one are earlier text (else the stopping step shows its canvas twice).
            earlier = job.result.token_ids[: snapshot.canvas_index * canvas]
            if limit.stop and snapshot.stopped and not snapshot.finished:
                if limit.final(decoder.text(limit.ids(earlier + snapshot.token_ids)))[1]:
                    # A stop string in a decided canvas ends the answer: the canvases after it would be cut away.
                    stopped_early.set()
                    job.cancellation.set()
            return redrafts.progress(snapshot, earlier, decoder, job.budget[0], limit)

        def on_done(job, outcome):
            if isinstance(outcome, BaseException):
                return outcome
            if stopped_early.is_set():
                outcome.status = "done"
            return redrafts.outcome(outcome, decoder, job.timings(), len(request.prompt_ids), limit)

        return self.submit(request, on_snapshot, on_done)

    @property
    def _decoder(self):
        if getattr(self, "_text_decoder", None) is None:
            from engine.runtime.redrafts import TextDecoder

            self._text_decoder = TextDecoder(self.tokenizer, self.loaded.generation.eos_token_ids)
        return self._text_decoder

    @property
    def queue_length(self) -> int:
        return self._inbox.qsize() + len(self.scheduler.waiting)

    def status(self) -> dict:
        return {
            "model": self.loaded.source,
            "device": str(self.scheduler.device),
            "running": self.scheduler.num_running,
            "waiting": self.queue_length,
            "max_batch": self.config.max_batch,
            "context": self.scheduler.max_len,  # prompt + output tokens one request may use
            "canvas_length": self.loaded.args.canvas_length,  # output is reserved in whole canvases
            # The name the palette shows: a checkpoint directory's last part, a preset's or shipped model's name.
            "model_name": Path(self.loaded.source).name or self.loaded.source,
            # What its checkpoint declares (jobs/tasks.py): the editor offers these, the server refuses others.
            "tasks": self.loaded.tasks.to_dict(),
        }

    def _run(self) -> None:
        while not self._closing:
            while True:
                try:
                    job = self._inbox.get_nowait()
                except queue.Empty:
                    break
                try:
                    self.scheduler.submit(job)
                except Exception as error:  # validated at submit; a race with config is still reported
                    job.on_done(error)
            if not self.scheduler.has_work:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            try:
                self.scheduler.step()
            except Exception as error:  # e.g. CUDA out of memory: fail this batch, keep serving
                log.exception("engine step failed; failing the %d requests in flight", self.scheduler.num_running)
                self.scheduler.fail_all(error)
                _free_cuda_memory()

    async def close(self) -> None:
        """Cancels what is in flight and stops the engine thread."""
        self._closing = True
        for job in list(self.scheduler.rows) + list(self.scheduler.waiting):
            if job is not None:
                job.cancellation.set()
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        leftovers = [job for job in self.scheduler.rows if job is not None] + list(self.scheduler.waiting)
        while not self._inbox.empty():
            leftovers.append(self._inbox.get_nowait())
        for job in leftovers:
            job.result.status = "cancelled"
            job.on_done(job.result)


def _free_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
