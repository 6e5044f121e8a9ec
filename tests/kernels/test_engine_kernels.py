"""The engine with the fused kernels equals the engine without them, on the tiny config cut to two layers (bf16 on
a GPU, float32 and float16 through the interpreter on a CPU), with full-precision, FP8 and NF4 weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.model.config import FULL, MODEL_PRESETS, SLIDING, GenerationArgs
from engine.model.ops import REFERENCE_OPS
from engine.runtime.generate import Request, generate
from engine.runtime.ops import enable
from engine.weights.checkpoint import LoadedModel, load_model, random_model
from engine.weights.quantize import quantize

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The tiny preset cut to what the interpreter has time for: its q, k and v kernel runs a program row per
# position and head, each op of it in Python, so a step costs in proportion to layers x canvas. One sliding
# and one global layer still run every kernel, both attention kinds and the last layer's paths; with an
# 8-token window the sliding layers' masks leave out cached slots (the prefixes here are 3 to 20 tokens, all
# inside the preset's 24), which the attention kernel takes from the lengths and the window.
ARGS = dataclasses.replace(MODEL_PRESETS["tiny"], num_layers=2, layer_types=(SLIDING, FULL), canvas_length=16,
                           sliding_window=8)


def tiny_model(device: str = DEVICE, fmt: str = "none") -> LoadedModel:
    """The tiny preset's tokenizer and generation settings, with ARGS' random float32 weights in `fmt`."""
    loaded = load_model("tiny", device, torch.float32)
    model = quantize(random_model(ARGS, device, torch.float32), fmt)
    return dataclasses.replace(loaded, model=model, args=ARGS)


@pytest.mark.parametrize("fmt", ["none", "fp8", "nf4"])
def test_decoder_logits_and_tokens_match_with_kernels(fmt):
    loaded = tiny_model(fmt=fmt)
    model = loaded.model
    prompt = [2, 40, 41, 42, 43, 44, 45]
    generation = loaded.generation.replace(max_new_tokens=loaded.args.canvas_length, max_denoising_steps=4)
    snapshots = {}
    for mode in ("off", "on"):
        enable(model, DEVICE, mode)
        steps = []
        result = generate(model, [Request(prompt, seed=3)], generation, on_step=steps.append)[0]
        snapshots[mode] = (result.token_ids, [s.entropy for s in steps])
    enable(model, DEVICE, "off")
    # float32 throughout: the kernel sums in another order, so entropies agree to rounding (1e-4 nats is
    # orders of magnitude above float32 rounding over these sums, and far below any real difference).
    for reference, fused in zip(snapshots["off"][1], snapshots["on"][1], strict=True):
        torch.testing.assert_close(fused, reference, rtol=0, atol=1e-4)
    assert snapshots["on"][0] == snapshots["off"][0]


def test_kernels_refuse_a_cpu_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    loaded = load_model("tiny")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        enable(loaded.model, "cpu", "on")
    with pytest.raises(ValueError, match="kernels must be one of off, on"):
        enable(loaded.model, "cpu", "fast")


def test_the_fused_head_draws_the_reference_paths_tokens_and_leaves_transformers_draws_alone(monkeypatch):
    """With native noise every step goes through kernels/head.py and kernels/noise.py (counted here) and gives the
    tokens of the reference head; with reference noise (transformers' multinomial draws) the reference head stays."""
    import kernels.head
    import kernels.noise

    loaded = tiny_model()
    calls = []
    for module, name in ((kernels.head, "sampling_head"), (kernels.noise, "counter_draws")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _real=real, _name=name, **kwargs: calls.append(_name)
                            or _real(*args, **kwargs))
    generation = loaded.generation.replace(max_new_tokens=loaded.args.canvas_length, max_denoising_steps=5)
    request = Request([2, 50, 51, 52], seed=8)
    for rng in ("native", "reference"):
        enable(loaded.model, DEVICE, "off")
        expected = generate(loaded.model, [request], generation, rng=rng)[0]
        enable(loaded.model, DEVICE, "on")
        calls.clear()
        result = generate(loaded.model, [request], generation, rng=rng)[0]
        steps = sum(result.steps) if rng == "native" else 0
        assert calls.count("sampling_head") == calls.count("counter_draws") == steps and result.steps
        assert result.token_ids == expected.token_ids
    enable(loaded.model, DEVICE, "off")
    assert loaded.model.ops == REFERENCE_OPS


def test_fp8_kernels_are_refused_at_load_on_a_gpu_before_ada(monkeypatch):
    loaded = load_model("tiny", "cpu", torch.float32)
    quantize(loaded.model, "fp8")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (8, 0))
    with pytest.raises(ValueError, match="needs an Ada or Hopper GPU .* this one is 8.0: use --quantize nf4"):
        enable(loaded.model, "cuda", "on")
    assert loaded.model.ops == REFERENCE_OPS  # refused before anything was switched
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (8, 9))
    enable(loaded.model, "cuda", "on")  # Ada: fine
    enable(loaded.model, "cuda", "off")
    nf4 = quantize(load_model("tiny", "cpu", torch.float32).model, "nf4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (8, 0))
    enable(nf4, "cuda", "on")  # NF4 compiles for Ampere
    enable(nf4, "cuda", "off")


@pytest.mark.parametrize("fmt", ["fp8", "nf4"])
def test_with_the_kernels_no_quantized_weight_is_dequantized(fmt, monkeypatch):
    """Every projection, stacked ones included, and every expert reads its weights as stored: a dequantized
    copy would give the same tokens, so only this catches a path that falls back to one."""
    import engine.weights.quantize

    model = tiny_model(fmt=fmt).model
    enable(model, DEVICE, "on")

    def refuse(*args, **kwargs):
        raise AssertionError("a weight was dequantized with the kernels on")

    monkeypatch.setattr(engine.weights.quantize, "from_fp8", refuse)
    monkeypatch.setattr(engine.weights.quantize, "from_nf4", refuse)
    generation = GenerationArgs(max_new_tokens=model.args.canvas_length, max_denoising_steps=2)
    assert generate(model, [Request([2, 40, 41], seed=1)], generation)[0].steps
    enable(model, DEVICE, "off")
    with pytest.raises(AssertionError, match="dequantized"):  # the reference path does dequantize
        generate(model, [Request([2, 40, 41], seed=1)], generation)


def test_the_fused_step_writes_the_self_conditioning_over_its_own_buffer():
    """The step reads the previous softmax first and writes the next one over it: a CUDA graph's static
    buffer then needs no [B, L, V] copy back after every replay."""
    from engine.model.cache import KVCache, decoder_masks
    from engine.runtime.generate import denoise_step, new_state, prefill, start_canvases
    from engine.runtime.noise import make_noise

    loaded = tiny_model()
    model, args = loaded.model, loaded.args
    enable(model, DEVICE, "on")
    cache = KVCache.allocate(args, 2, 64, model.dtype, DEVICE)
    lengths = prefill(model, cache, [[3] * 10, [4] * 7])
    state = new_state(loaded.generation, 2, args.canvas_length, [4, 4], args.vocab_size, DEVICE, model.dtype)
    noise = make_noise("native", [1, 2], args.vocab_size, args.canvas_length, DEVICE)
    start_canvases(state, noise, [0, 1], lengths, DEVICE, first=True)
    masks = decoder_masks(cache.lengths, max(lengths), args.canvas_length, args.sliding_window, min(lengths))
    buffer = state.self_cond
    for _ in range(2):
        denoise_step(model, cache, state, noise, loaded.generation, masks, max(lengths), [True, True])
        # the same memory, laid out the same way: what lets torch's copy_ skip copying it onto itself
        assert (state.self_cond.data_ptr(), state.self_cond.stride()) == (buffer.data_ptr(), buffer.stride())
        torch.testing.assert_close(buffer.sum(dim=-1), torch.ones(2, args.canvas_length, device=DEVICE))
    enable(model, DEVICE, "off")


@pytest.mark.timeout(300)  # some ten steps of interpreted kernels: about 75 s on a busy 2-core VM
def test_the_fixed_shape_scheduler_gives_the_same_tokens_with_the_kernels():
    """The CUDA-graph path run eagerly (StepGraphs' buckets: views of the batch's state, the history a
    non-contiguous one), requests joining mid-flight: the fused step writes those views in place."""
    from engine.runtime.scheduler import Job, Scheduler

    loaded = tiny_model()
    # the second runs two canvases, so the first leaves while it runs
    requests = [Request([2, 40 + i, 41, 42 + i], seed=i, max_new_tokens=loaded.args.canvas_length * (1 + i),
                        max_denoising_steps=2 + i) for i in range(2)]
    outcomes = {}
    for mode in ("off", "on"):
        enable(loaded.model, DEVICE, mode)
        # capture=False on a GPU too: the float32 expert loop (kernels off) reads its group bounds on the host
        scheduler = Scheduler(loaded.model, loaded.generation, max_batch=2, max_len=128, fixed_shapes=True,
                              capture=False)
        done = {}
        for i, request in enumerate(requests):
            scheduler.submit(Job(request, lambda snapshot: None, lambda outcome, i=i: done.setdefault(i, outcome)))
            scheduler.step()  # the next one joins a batch already running
        while scheduler.has_work:
            scheduler.step()
        outcomes[mode] = [(done[i].token_ids, done[i].steps) for i in range(len(requests))]
    enable(loaded.model, DEVICE, "off")
    assert all(steps for _, steps in outcomes["on"])
    assert outcomes["on"] == outcomes["off"]
