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

from engine.generate import BatchState, denoise_step


def capture_denoise_step(
    model, cache, state: BatchState, noise, generation, masks, kv_len: int, active: list[bool], warmup: int = 2
) -> Callable[[], None]:
    """Returns `replay()`, which advances `state` in place by one step exactly as `denoise_step` would.

    The warm-up steps run on a side stream (as capture requires) and are undone, so `state` is
    unchanged when this returns.
    """
    fields = [field.name for field in dataclasses.fields(state)]

    def step() -> None:
        moving = copy.copy(state)  # denoise_step rebinds fields; copy results back into the static buffers
        denoise_step(model, cache, moving, noise, generation, masks, kv_len, active)
        for name in fields:
            getattr(state, name).copy_(getattr(moving, name))

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
    with torch.cuda.graph(graph):
        step()
    restore()
    return graph.replay
