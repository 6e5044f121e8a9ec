"""CUDA checks on tiny checkpoints: parity with transformers on the GPU, and a denoising step in a CUDA graph."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.model.cache import KVCache, decoder_masks
from engine.model.config import GenerationArgs
from engine.runtime.generate import Request, denoise_step, generate, new_state, prefill, start_canvases
from engine.runtime.graphs import capture_denoise_step
from engine.runtime.noise import make_noise
from engine.runtime.reference import load_reference, reference_generate
from engine.weights.checkpoint import load_checkpoint
from tests.engine.tiny import TinySpec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA = torch.device("cuda")


def test_reference_rng_generation_matches_transformers_on_cuda(checkpoint):
    """float32 on the GPU: both sides run the same cuBLAS GEMMs; attention kernels differ (the reference
    passes no mask, we pass one), but at batch size 1 the key sets are the same and the tokens agreed on an
    H200 for every seed tried."""
    directory = checkpoint(TinySpec())
    native = load_checkpoint(directory, CUDA, torch.float32)
    reference = load_reference(str(directory), CUDA, torch.float32)
    for seed in range(3):
        prompt = list(range(3, 20 + seed))
        expected, steps = reference_generate(reference, prompt, native.generation, seed)
        (ours,) = generate(native.model, [Request(prompt, seed=seed)], native.generation, rng="reference")
        assert (ours.token_ids, ours.steps) == (expected, steps)


def test_a_denoising_step_replays_in_a_cuda_graph_exactly(checkpoint):
    """With the counter-based noise a step has no host sync and fixed shapes: captured once, a replay must
    reproduce the eager step bit for bit (same kernels, same inputs). bf16 only: in float32 the experts fall
    back to a loop that reads the group sizes on the host (torch's grouped GEMM is bf16-only on CUDA)."""
    dtype = torch.bfloat16
    spec = TinySpec()
    model = load_checkpoint(checkpoint(spec), CUDA, dtype).model
    L, steps = spec.canvas_length, 8
    cache = KVCache.allocate(spec.args, 2, 40, dtype, CUDA)
    lengths = prefill(model, cache, [list(range(3, 43)), list(range(5, 30))])
    generation = GenerationArgs(max_denoising_steps=steps)
    state = new_state(generation, 2, L, [steps, steps], spec.vocab_size, CUDA, dtype)
    noise = make_noise("native", [1, 2], spec.vocab_size, L, CUDA)
    start_canvases(state, noise, [0, 1], lengths, CUDA, first=True)
    masks = decoder_masks(cache.lengths, max(lengths), L, spec.sliding_window, min(lengths))
    fields = [field.name for field in dataclasses.fields(state)]
    start = {name: getattr(state, name).clone() for name in fields}
    replay = capture_denoise_step(model, cache, state, noise, generation, masks, max(lengths), [True, True])
    for name in fields:  # capturing leaves the state as it was
        assert torch.equal(getattr(state, name), start[name]), name
    replay()
    replay()
    torch.cuda.synchronize()
    captured = {name: getattr(state, name).clone() for name in fields}
    for name in fields:
        getattr(state, name).copy_(start[name])
    for _ in range(2):
        denoise_step(model, cache, state, noise, generation, masks, max(lengths), [True, True])
    for name in fields:
        assert torch.equal(getattr(state, name), captured[name]), name


def test_the_scheduler_replays_captured_steps_exactly(checkpoint):
    """The scheduler's CUDA graphs (one per batch bucket) give what the same fixed-shape steps give eagerly,
    for requests that join mid-flight and span several canvases."""
    native = load_checkpoint(checkpoint(TinySpec()), CUDA, torch.bfloat16)
    requests = [Request(list(range(3, 3 + n)), seed=n, max_new_tokens=32, max_denoising_steps=6) for n in (9, 30, 14)]

    assert scheduled_tokens(native, requests, capture=True) == scheduled_tokens(native, requests, capture=False)


def test_captured_steps_take_canvases_started_from_given_tokens(checkpoint):
    """Rows whose canvases start from init_ids (a passage model's copies) next to noise rows: start_canvases
    writes into the static canvas between replays, so the captured steps give what the eager ones give."""
    native = load_checkpoint(checkpoint(TinySpec()), CUDA, torch.bfloat16)
    requests = [
        Request(list(range(3, 12)), seed=9, max_new_tokens=32, max_denoising_steps=6, init_ids=list(range(60, 80))),
        Request(list(range(3, 33)), seed=30, max_new_tokens=32, max_denoising_steps=6),
        Request(list(range(5, 19)), seed=14, max_new_tokens=48, max_denoising_steps=5, init_ids=[90] * 7),
    ]

    assert scheduled_tokens(native, requests, capture=True) == scheduled_tokens(native, requests, capture=False)


def scheduled_tokens(native, requests: list[Request], capture: bool) -> list[list[int]]:
    """Each request's tokens through the scheduler (admitted one a step), its steps captured as CUDA graphs or
    run eagerly."""
    from engine.runtime.scheduler import Job, Scheduler

    scheduler = Scheduler(native.model, native.generation, max_batch=4, max_len=128)
    assert scheduler.graphs is not None and scheduler.graphs.capture
    scheduler.graphs.capture = capture
    results = [[] for _ in requests]
    for i, request in enumerate(requests):
        scheduler.submit(Job(request, lambda snapshot: None, results[i].append))
        scheduler.step()
    while scheduler.has_work:
        scheduler.step()
    return [outcome.token_ids for (outcome,) in results]
