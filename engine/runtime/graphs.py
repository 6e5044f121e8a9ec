"""CUDA-graph capture of one denoising step: a step's ~2,000 kernel launches replayed as one.

Eager, a batch-1 step of the 26B model spends more time launching kernels than running them (H200,
2026-11-27: 75-80 ms eager against 42 ms replayed). A captured step needs fixed shapes and addresses:
the batch state lives in static buffers, the masks are computed for a fixed kv_len, and the
counter-based noise has no generator state. Capture again when kv_len or the masks change (a commit).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch

from engine.runtime.generate import BatchState, denoise_step


def capture_denoise_step(
    model, cache, state: BatchState, noise, generation, masks, kv_len: int, active: list[bool]
) -> Callable[[], None]:
    """Returns `replay()`, which advances `state` in place by one step exactly as `denoise_step` would."""
    fields = [field.name for field in dataclasses.fields(state)]

    def step() -> None:
        moving = copy.copy(state)  # denoise_step rebinds fields; copy results back into the static buffers
        denoise_step(model, cache, moving, noise, generation, masks, kv_len, active)
        for name in fields:
            getattr(state, name).copy_(getattr(moving, name))

    return _capture(step, state, fields)


def _capture(
    step: Callable[[], None], state: BatchState, fields: list[str], warmup: int = 2, pool=None
) -> Callable[[], None]:
    """Captures `step` in a CUDA graph (its temporaries in `pool` when one is given). The warm-up steps run
    on a side stream (as capture requires) and are undone, so `state` is unchanged when this returns."""
    start = {name: getattr(state, name).clone() for name in fields}

    def restore() -> None:
        for name in fields:
            getattr(state, name).copy_(start[name])

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    restore()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        step()
    restore()
    return graph.replay


def _bucket_sizes(max_batch: int) -> list[int]:
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    return sorted({*sizes, max_batch})


class StepGraphs:
    """The scheduler's denoising step on fixed shapes: one captured graph per batch-size bucket.

    Every bucket reads the whole cache (kv_len = its size) through masks kept in static
    buffers, so a commit or a new request only rewrites the masks instead of recapturing.
    Bucket b runs rows [0, b): the scheduler fills the lowest free rows first, so a lone
    request runs at batch 1. With `capture=False` the same fixed-shape step runs eagerly
    (CPU, tests), which is what a replay reproduces bit for bit.

    All buckets share one memory pool and are captured together, the largest first: a step's temporaries are
    freed when its capture ends (its results are copied into the static state), so each smaller bucket reuses
    the largest one's memory. A pool per bucket held them all at once, some 10 GB more at batch 4 with the
    kernels off (an estimate from the temporaries' sizes). Sharing is safe because steps replay one at a
    time on one stream and none keeps a tensor from the pool.
    """

    def __init__(self, model, cache, state: BatchState, noise, generation, capture: bool):
        from engine.model.cache import decoder_masks

        self.model, self.cache, self.state, self.noise, self.generation = model, cache, state, noise, generation
        self.capture = capture
        self.kv_len = cache.max_len
        self.canvas_length = state.canvas.shape[1]
        self._decoder_masks = decoder_masks
        self.masks = self._fresh_masks()
        self.sizes = _bucket_sizes(cache.num_rows)
        self._replays: dict[int, Callable[[], None]] = {}
        self._pool = None
        self.last_bucket = 0  # the bucket the latest step ran
        self._stopped = torch.zeros(cache.num_rows, dtype=torch.bool, device=cache.lengths.device)

    def _fresh_masks(self):
        window = self.model.args.sliding_window
        return self._decoder_masks(self.cache.lengths, self.kv_len, self.canvas_length, window, 0)

    def lengths_changed(self) -> None:
        """Rewrites the static masks in place after cache.lengths changed (admit, commit, leave)."""
        for kind, fresh in self._fresh_masks().items():
            self.masks[kind].mask.copy_(fresh.mask)

    def bucket(self, num_rows: int) -> int:
        return next(size for size in self.sizes if size >= num_rows)

    def step(self, num_rows: int) -> torch.Tensor:
        """One step over rows [0, bucket(num_rows)); returns stopped [max_batch] bool (device)."""
        size = self.bucket(num_rows)
        if not self._replays:
            if self.capture:
                self._pool = torch.cuda.graph_pool_handle()
            for bucket in sorted(self.sizes, reverse=True):
                self._replays[bucket] = self._build(bucket)
        self.last_bucket = size
        self._stopped.zero_()
        self._replays[size]()
        return self._stopped

    def _build(self, size: int) -> Callable[[], None]:
        from engine.model.cache import AttentionMask, KVCache

        state = BatchState(**{
            name: (value[:, :size] if name == "history" else value[:size])
            for name, value in ((f.name, getattr(self.state, f.name)) for f in dataclasses.fields(self.state))
        })
        cache = KVCache([k[:size] for k in self.cache.keys], [v[:size] for v in self.cache.values], self.cache.lengths[:size])
        masks = {kind: AttentionMask(mask.start, mask.mask[:size]) for kind, mask in self.masks.items()}
        noise = copy.copy(self.noise)
        noise.seeds = self.noise.seeds[:size]  # a view: reseeding a row reaches every bucket
        stopped = self._stopped[:size]
        fields = [f.name for f in dataclasses.fields(state)]
        active = [True] * size  # only the reference RNG reads it, and it cannot be captured anyway

        def step() -> None:
            moving = copy.copy(state)
            stopped.copy_(denoise_step(self.model, cache, moving, noise, self.generation, masks, self.kv_len, active))
            for name in fields:
                getattr(state, name).copy_(getattr(moving, name))

        if not self.capture:
            return step
        return _capture(step, state, fields, pool=self._pool)
