"""Continuous batching: requests take free cache rows between steps, run together, and leave when done.

The weights are read once per decoder pass for every canvas in it, so concurrent requests share steps:
a step over four canvases costs little more than over one while the model is memory-bound. Each request
keeps its own seed, step budget and position in its own canvas; with the native (counter-based) RNG its
tokens do not depend on what else shares the batch.

The scheduler is synchronous and single-threaded: `engine.api.Engine` drives it from a thread of its own.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.model.cache import KVCache, decoder_masks
from engine.model.config import GenerationArgs
from engine.model.network import DiffusionGemma
from engine.runtime.generate import (
    Request,
    Result,
    close_canvases,
    commit,
    denoise_step,
    fused_head,
    new_state,
    prefill,
    preview,
    request_budget,
    start_canvases,
)
from engine.runtime.graphs import StepGraphs
from engine.runtime.noise import make_noise
from jobs.cancel import Cancellation


@dataclass(frozen=True)
class JobSnapshot:
    """One request's canvas after a denoising step."""

    step: int  # decoder passes on the current canvas
    max_steps: int
    canvas_index: int
    token_ids: list[int]  # the argmax canvas: what would be committed now
    entropy: list[float]  # per position; 0 is certain
    accepted: list[bool]
    stopped: bool  # this step ended the canvas
    finished: bool  # the request is done


@dataclass
class Job:
    request: Request
    on_snapshot: Callable[[JobSnapshot], None]
    on_done: Callable[[Result | BaseException], None]
    budget: tuple[int, int] = (0, 0)  # (canvases, steps per canvas)
    result: Result = field(default_factory=Result)
    row: int = -1
    # jobs/cancel.py's flag, read between steps; the request's own when it brings one (Engine.submit's job)
    cancellation: Cancellation | None = None
    # perf_counter() times: queued, taken into a row (prefill starts), prefill done, first step done
    submitted_at: float = field(default_factory=time.perf_counter)
    admitted_at: float = 0.0
    prefilled_at: float = 0.0
    first_step_at: float = 0.0

    def __post_init__(self) -> None:
        if self.cancellation is None:
            self.cancellation = self.request.cancellation or Cancellation()

    def timings(self) -> dict[str, float]:
        """Seconds spent queueing, in prefill and denoising (so far)."""
        now = time.perf_counter()
        admitted = self.admitted_at or now
        prefilled = self.prefilled_at or admitted
        return {
            "queue_s": admitted - self.submitted_at,
            "prefill_s": prefilled - admitted,
            "denoise_s": now - prefilled if self.prefilled_at else 0.0,
        }


class Scheduler:
    def __init__(
        self,
        model: DiffusionGemma,
        generation: GenerationArgs,
        max_batch: int,
        max_len: int,
        rng: str = "native",
        fixed_shapes: bool | None = None,
        capture: bool | None = None,
    ):
        """fixed_shapes: run steps through `StepGraphs`. Default: on CUDA in bfloat16 with the native RNG, the
        combination that can be captured. capture: record those steps in CUDA graphs (default: on CUDA); off,
        the same fixed-shape steps run eagerly, e.g. a float32 model whose expert loop reads group bounds on
        the host, which a capture cannot do."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        args = model.args
        self.model, self.generation, self.max_batch = model, generation, max_batch
        self.device = model.embed_tokens.weight.device
        self.max_len = min(max_len, args.max_context)
        self.cache = KVCache.allocate(args, max_batch, self.max_len, model.dtype, self.device)
        self.noise = make_noise(rng, [0] * max_batch, args.vocab_size, args.canvas_length, self.device)
        self.state = new_state(generation, max_batch, args.canvas_length, [1] * max_batch, args.vocab_size, self.device, model.dtype)
        self.lengths = [0] * max_batch  # host copy of cache.lengths
        self.rows: list[Job | None] = [None] * max_batch
        self.waiting: collections.deque[Job] = collections.deque()
        on_cuda = self.device.type == "cuda"
        if fixed_shapes is None:
            fixed_shapes = on_cuda and model.dtype == torch.bfloat16 and rng == "native"
        if fixed_shapes and rng != "native":
            raise ValueError("fixed shapes (CUDA graphs) need the native RNG: the reference one keeps generator state")
        if capture is None:
            capture = on_cuda
        self.graphs = (
            StepGraphs(model, self.cache, self.state, self.noise, generation, capture) if fixed_shapes else None
        )

    # --- requests ------------------------------------------------------------------

    def check(self, request: Request) -> tuple[int, int]:
        """(canvases, steps per canvas) for a request; raises RequestError when it cannot run here.
        Reads only settings, so another thread may call it while the scheduler steps."""
        args = self.model.args
        return request_budget(request, self.generation, args.canvas_length, self.max_len, args.vocab_size)

    def submit(self, job: Job) -> None:
        """Queues a job; raises RequestError (nothing queued) when it cannot run."""
        job.budget = self.check(job.request)
        self.waiting.append(job)

    @property
    def num_running(self) -> int:
        return sum(job is not None for job in self.rows)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting) or self.num_running > 0

    # --- one step --------------------------------------------------------------------

    @torch.no_grad()
    def step(self) -> None:
        """Admits waiting jobs, drops cancelled ones, runs one decoder pass over every running canvas."""
        self._drop_cancelled()
        self._admit()
        running = [job is not None for job in self.rows]
        if not any(running):
            return
        self.state.running &= torch.tensor(running, device=self.device)
        stopped = self._denoise(running)
        ended = [row for row in range(self.max_batch) if stopped[row]]
        results = [job.result if job is not None else Result(status="idle") for job in self.rows]
        budgets = [job.budget if job is not None else (1, 1) for job in self.rows]
        choices = [job.request.choices if job is not None else None for job in self.rows]
        to_commit, canvases = close_canvases(self.state, ended, results, budgets, self.generation, choices,
                                             fused_head(self.model, self.noise))
        self._publish(stopped)
        if to_commit:
            commit(self.model, self.cache, canvases, to_commit, self.lengths)
            self._start(to_commit)
        for row, job in enumerate(self.rows):
            if job is not None and job.result.status == "done":
                self._finish(row, job.result)

    def _denoise(self, running: list[bool]) -> list[bool]:
        """One decoder pass + sampler step; returns which rows stopped their canvas."""
        if self.graphs is not None:
            self.graphs.lengths_changed()
            return self.graphs.step(max(row for row, is_running in enumerate(running) if is_running) + 1).tolist()
        active_lengths = [self.lengths[row] for row in range(self.max_batch) if running[row]]
        L = self.model.args.canvas_length
        masks = decoder_masks(self.cache.lengths, max(active_lengths), L, self.model.args.sliding_window, min(active_lengths))
        return denoise_step(
            self.model, self.cache, self.state, self.noise, self.generation, masks, max(active_lengths), running
        ).tolist()

    def _admit(self) -> None:
        free = [row for row, job in enumerate(self.rows) if job is None]
        admitted = []
        while self.waiting and free:
            job = self.waiting.popleft()
            if job.cancellation.is_set:
                job.result.status = "cancelled"
                job.on_done(job.result)
                continue
            job.row = free.pop(0)  # lowest free row first: keeps the batch compact
            self.rows[job.row] = job
            admitted.append(job)
        if not admitted:
            return
        rows = [job.row for job in admitted]
        started = time.perf_counter()
        for job in admitted:
            job.admitted_at = started
            self.noise.reseed(job.row, job.request.seed)
            self.state.num_steps[job.row] = job.budget[1]
            self.state.canvas_index[job.row] = 0
        lengths = prefill(self.model, self.cache, [job.request.prompt_ids for job in admitted], rows)
        for row, length in zip(rows, lengths, strict=True):
            self.lengths[row] = length
        self._start(rows, first=True)
        prefilled = time.perf_counter()
        for job in admitted:
            job.prefilled_at = prefilled

    def _start(self, rows: list[int], first: bool = False) -> None:
        """The rows' next canvases, from noise or from their requests' init_ids."""
        requests = [self.rows[row].request for row in rows]
        start_canvases(self.state, self.noise, rows, self.lengths, self.device, first,
                       [request.init_ids for request in requests], self.model.args.pad_token_id,
                       [request.choices for request in requests])

    def _drop_cancelled(self) -> None:
        for row, job in enumerate(self.rows):
            if job is not None and job.cancellation.is_set:
                job.result.status = "cancelled"
                self._finish(row, job.result)

    def _publish(self, stopped: list[bool]) -> None:
        rows = [row for row, job in enumerate(self.rows) if job is not None]
        shown, entropies = preview(self.state)
        canvas = shown[rows].tolist()
        entropy = entropies[rows].tolist()
        accepted = self.state.accepted[rows].tolist()
        steps = self.state.steps_done[rows].tolist()
        canvas_index = self.state.canvas_index[rows].tolist()
        now = time.perf_counter()
        for i, row in enumerate(rows):
            job = self.rows[row]
            job.first_step_at = job.first_step_at or now
            job.on_snapshot(
                JobSnapshot(
                    step=steps[i],
                    max_steps=job.budget[1],
                    canvas_index=canvas_index[i],
                    token_ids=canvas[i],
                    entropy=entropy[i],
                    accepted=accepted[i],
                    stopped=stopped[row],
                    finished=job.result.status == "done",
                )
            )

    def _finish(self, row: int, outcome: Result | BaseException) -> None:
        job = self.rows[row]
        self.rows[row] = None
        self.state.running[row] = False
        self.lengths[row] = 0
        self.cache.lengths[row] = 0
        job.on_done(outcome)

    def fail_all(self, error: BaseException) -> None:
        """An engine error (e.g. out of memory): every job in flight fails with it; the rows are freed."""
        for row, job in enumerate(self.rows):
            if job is not None:
                self._finish(row, error)
