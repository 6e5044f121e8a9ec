"""A denoising step's native random numbers in one launch: the sampling uniforms and the renoising tokens.

engine/runtime/noise.py's `CounterNoise` hashes (seed, canvas, step, stream, position) with five `_mix32` rounds of
five or six integer ops each, and a step draws two streams (the uniforms the sampling head inverts, the
tokens that renoise the rejected positions): about 100 tiny torch kernels a step on [B] and [B, L] tensors,
each a few microseconds of launch even replayed from a CUDA graph, against a step that should take about
8 ms. Here one program per (row, block of positions) hashes the row's seed, canvas and step once (the first
three rounds, which the two streams share), finishes each stream's row hash, and hashes every position of
its block for both streams: one launch, no [B, L] temporaries.

The arithmetic is the reference's exactly: int64 holding values below 2**32, the same multipliers (below
2**31, so no product overflows) and the same 32-bit masks, then (bits >> 8) * 2**-24 and bits % vocab, so
the results are bit for bit the torch code's on every device and in the interpreter. Tested with
torch.equal against `reference` and engine/runtime/noise.py's `CounterNoise` on CPU through
TRITON_INTERPRET=1; compiled for sm_90/89/80 by tests/kernels/offline_compile.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# engine/runtime/noise.py's constants, written out here (kernels import nothing of the engine);
# tests/kernels/test_noise.py checks that both sides still draw the same numbers.
MASK32 = 0xFFFFFFFF
SEED_OFFSET = 0x9E3779B9
STREAM_SAMPLE, STREAM_RENOISE = 0, 1

# 256 positions: a whole canvas of the 26B-A4B per program, so a step is B programs
BLOCK = 256
# Compiled kernels read no globals but constexprs
_MASK = tl.constexpr(MASK32)
_SAMPLE = tl.constexpr(STREAM_SAMPLE)
_RENOISE = tl.constexpr(STREAM_RENOISE)
_SEED_OFFSET = tl.constexpr(SEED_OFFSET)


@triton.jit
def _mix32(x):
    """engine/runtime/noise.py's `_mix32`, op for op, on int64 holding values below 2**32."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _MASK
    return x ^ (x >> 16)


@triton.jit
def _draws_kernel(seeds_ptr, canvas_ptr, step_ptr, uniforms_ptr, renoise_ptr, length, vocab, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    seed = tl.load(seeds_ptr + row).to(tl.int64)
    canvas = tl.load(canvas_ptr + row).to(tl.int64)
    step = tl.load(step_ptr + row).to(tl.int64)
    # CounterNoise._bits' row hash; its first three rounds do not depend on the stream
    h = _mix32((seed & _MASK) ^ _SEED_OFFSET)
    h = _mix32(h ^ ((seed >> 32) & _MASK))
    h = _mix32(h ^ (canvas & _MASK))
    h_sample = _mix32(h ^ ((step * 4 + _SAMPLE) & _MASK))
    h_renoise = _mix32(h ^ ((step * 4 + _RENOISE) & _MASK))

    positions = (tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    in_canvas = positions < length
    out = row.to(tl.int64) * length + positions
    sample_bits = _mix32(h_sample ^ positions)
    tl.store(uniforms_ptr + out, (sample_bits >> 8).to(tl.float32) * (2.0**-24), mask=in_canvas)
    tl.store(renoise_ptr + out, _mix32(h_renoise ^ positions) % vocab, mask=in_canvas)


def counter_draws(seeds: torch.Tensor, canvas_index: torch.Tensor, step_index: torch.Tensor, canvas_length: int,
                  vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """seeds, canvas_index, step_index [B] int64 -> (CounterNoise.uniforms [B, L] float32,
    CounterNoise.renoise [B, L] int64) for L = canvas_length, as engine/runtime/noise.py computes them."""
    rows = seeds.shape[0]
    uniforms = torch.empty(rows, canvas_length, dtype=torch.float32, device=seeds.device)
    renoise = torch.empty(rows, canvas_length, dtype=torch.int64, device=seeds.device)
    _draws_kernel[(rows, triton.cdiv(canvas_length, BLOCK))](
        seeds.contiguous(), canvas_index.contiguous(), step_index.contiguous(), uniforms, renoise,
        canvas_length, vocab_size, BLOCK=BLOCK, num_warps=4,
    )
    return uniforms, renoise


def reference(seeds: torch.Tensor, canvas_index: torch.Tensor, step_index: torch.Tensor, canvas_length: int,
              vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`counter_draws` in torch, op for op as engine/runtime/noise.py's CounterNoise draws them."""
    positions = torch.arange(canvas_length, dtype=torch.int64, device=seeds.device)
    h = _reference_mix32((seeds & MASK32) ^ SEED_OFFSET)
    h = _reference_mix32(h ^ ((seeds >> 32) & MASK32))
    h = _reference_mix32(h ^ (canvas_index & MASK32))

    def bits(stream: int) -> torch.Tensor:  # [B, L]
        row = _reference_mix32(h ^ ((step_index * 4 + stream) & MASK32))
        return _reference_mix32(row[:, None] ^ positions[None, :])

    return (bits(STREAM_SAMPLE) >> 8).to(torch.float32) * 2.0**-24, bits(STREAM_RENOISE) % vocab_size


def _reference_mix32(x: torch.Tensor) -> torch.Tensor:
    """`_mix32` in torch, on int64 holding values below 2**32."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & MASK32
    return x ^ (x >> 16)
