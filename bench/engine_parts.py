"""Where a denoising step's time goes: each part of the step timed alone, on the step's own shapes and modules,
with the bytes it must read and the bandwidth that achieves against the device's measured read ceiling.

Parts (all layers together where a part is per layer):
- attention: input norm, q/k/v projections, RoPE, attention over the cached prefix plus the canvas, o_proj;
- dense: the dense gated MLP with its input norm;
- moe: router and experts;
- self_conditioning: the softmax (reference path only: the fused head leaves it taken) x embedding product
  and the self-conditioning MLP;
- head: lm_head, soft-cap and temperature on the reference path; the whole fused sampling head
  (kernels/head.py: also the draws, argmax, entropy and the next step's softmax) with kernels on;
- sampler: the rest of the step: on the reference path the draws, argmax, entropy and the self-conditioning
  cast; with kernels on the native noise's draws (kernels/noise.py); on both the acceptance, the next canvas
  and the stop test.

On CUDA every part is captured in its own CUDA graph and replayed, so launch overhead (which dominates an
eager step) is left out, as it is in the captured step; the parts plus the norms and residual adds between
them make up the step. Used by bench/engine.py --breakdown.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from engine.model.cache import KVCache
from engine.runtime.generate import BatchState, advance
from engine.runtime.noise import CounterNoise
from engine.runtime.sampler import apply_temperature, temperature, token_entropy
from engine.weights.quantize import weight_bytes

PARTS = ("attention", "dense", "moe", "self_conditioning", "head", "sampler")


def read_ceiling_gbps(device: str, gib: int = 4) -> float | None:
    """The device's achievable read bandwidth: a sum over a tensor far larger than any cache (GB/s)."""
    if device != "cuda":
        return None
    x = torch.ones(gib * 2**29, dtype=torch.bfloat16, device=device)
    ms = replay_ms(lambda: x.sum(dtype=torch.float32), device, repeats=10)
    return gib * 2**30 / ms / 1e6


def step_parts(model, cache: KVCache, state: BatchState, noise, generation, masks, kv_len: int, device: str,
               repeats: int) -> dict[str, dict]:
    """{part: {"ms", "bytes", "gbps"}} for one step of this batch state (bytes: weights and cache the part must
    read, and the [B, L, V] tensors it must write or read; None for the sampler, which is not bandwidth-bound
    in any useful sense)."""
    args = model.args
    rows, length = state.canvas.shape
    dtype = model.dtype
    generator = torch.Generator(device=device).manual_seed(0)
    h = torch.randn(rows, length, args.hidden_size, generator=generator, device=device).to(dtype)
    tokens = h.reshape(-1, args.hidden_size)
    layers = list(model.layers)
    vocab_bytes = args.vocab_size * args.hidden_size * dtype.itemsize
    canvas_vocab_bytes = rows * length * args.vocab_size * dtype.itemsize
    temp = temperature(state.cur_step, state.num_steps, generation.t_min, generation.t_max)
    logits = torch.randn(rows, length, args.vocab_size, generator=generator, device=device) * 4.0
    probs = torch.softmax(logits, dim=-1).to(dtype)
    entropy = token_entropy(logits)

    parts: dict[str, tuple[Callable[[], object], int | None]] = {}
    parts["attention"] = _attention_part(model, cache, h, state.positions, masks, kv_len)
    parts["dense"] = (lambda: [layer.mlp(layer.pre_feedforward_layernorm(h)) for layer in layers],
                      sum(weight_bytes(layer.mlp) for layer in layers))
    parts["moe"] = (lambda: [layer.experts(layer.pre_feedforward_layernorm_2(tokens), *layer.router(tokens))
                             for layer in layers],
                    sum(weight_bytes(layer.experts) + weight_bytes(layer.router) for layer in layers))
    fused = model.ops.head is not None and isinstance(noise, CounterNoise)
    sc_mask = torch.ones(rows, dtype=torch.bool, device=device)
    # the reference path keeps the tempered logits and takes their softmax here; the fused head leaves it taken
    sc_logits, sc_probs = (None, probs) if fused else (logits.to(dtype), None)
    parts["self_conditioning"] = (
        lambda: model.self_conditioning(model.embed(state.canvas),
                                        model.soft_embeddings(state.canvas, sc_logits, sc_mask, sc_probs)),
        vocab_bytes + canvas_vocab_bytes + weight_bytes(model.self_conditioning))

    # the sampler's step after the head writes the state (in place with kernels/sampler.py): a scratch copy's
    scratch = dataclasses.replace(state, **{f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)
                                            if f.name != "self_cond"})

    def tail():
        if fused:  # the step draws the head's uniforms and the renoising tokens together (kernels/noise.py)
            renoise = noise.draws(state.canvas_index, state.steps_done, model.ops.noise)[1]
        else:
            renoise = noise.renoise(None, state.canvas_index, state.steps_done)
        if model.ops.advance is None:
            return advance(scratch, state.argmax, state.argmax, entropy, renoise, generation)
        scratch.running.copy_(state.running)  # every replay steps the same rows (two copies of [B], not timed apart)
        scratch.cur_step.copy_(state.cur_step)
        return model.ops.advance(scratch, state.argmax, state.argmax, entropy, renoise, generation)

    if fused:
        uniforms = noise.uniforms(state.canvas_index, state.steps_done).flatten()
        temp_tokens = temp.repeat_interleave(length)
        parts["head"] = (lambda: model.ops.head(tokens, model.embed_tokens.weight, temp_tokens,
                                                  args.final_logit_softcap, uniforms),
                         vocab_bytes + 2 * canvas_vocab_bytes)  # the softmax written, then rescaled in place
        parts["sampler"] = (tail, None)
    else:
        parts["head"] = (lambda: apply_temperature(model.logits(h), temp), vocab_bytes + 2 * canvas_vocab_bytes)

        def sampler():
            processed = apply_temperature(logits, temp)
            noise.samples(processed, [True] * rows, state.canvas_index, state.steps_done)
            torch.argmax(processed, dim=-1)
            token_entropy(processed)
            processed.to(dtype)
            return tail()

        parts["sampler"] = (sampler, None)

    report = {}
    for name in PARTS:
        fn, nbytes = parts[name]
        ms = replay_ms(fn, device, repeats)
        report[name] = {"ms": ms, "bytes": nbytes, "gbps": nbytes / ms / 1e6 if nbytes else None}
    return report


def _attention_part(model, cache: KVCache, h, positions, masks, kv_len: int):
    """Every layer's attention sublayer as the decoder runs it (fused or not), on the same input h."""
    rope = model.rope(positions, h.dtype)
    layers = list(model.layers)

    def run():
        for i, layer in enumerate(layers):
            cos, sin = rope[layer.layer_type]
            layer.self_attn.decoder_attention(layer.input_layernorm(h), cos, sin, cache, i, None,
                                              masks[layer.layer_type], kv_len)

    # the cached slots a row sees: its window in sliding layers, the whole prefix in global ones
    visible = [min(kv_len, model.args.sliding_window - 1) if layer.self_attn.sliding_window else kv_len
               for layer in layers]
    cache_bytes = sum(2 * h.shape[0] * slots * cache.keys[i][0, 0].numel() * cache.keys[i].element_size()
                      for i, slots in enumerate(visible))
    return run, sum(weight_bytes(layer.self_attn) for layer in layers) + cache_bytes


def replay_ms(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median ms of fn: on CUDA captured in a graph (launches left out) and timed with events."""
    with torch.no_grad():
        if device != "cuda":
            fn()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                times.append(1e3 * (time.perf_counter() - started))
            return statistics.median(times)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
