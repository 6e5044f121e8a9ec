"""Fused sampling head: lm_head, soft-cap, temperature and every per-position statistic of a denoising step
in one pass over the vocabulary, without the [tokens, V] logits ever reaching memory.

The engine's reference step (engine/generate.py) writes fp32 logits [tokens, 262144] (268 MB per canvas),
then tempers them, takes a softmax for the draw, an entropy (three more [tokens, V] temporaries), an argmax,
and keeps a rounded copy for the next step's self-conditioning softmax. Here each program owns BLOCK_N
positions and a contiguous split of the vocabulary, computes one [BLOCK_N, BLOCK_V] logits tile at a time
(a K loop over the hidden size on the tensor cores) and folds it into running per-position figures:

- max m, s = sum exp(z - m) and t = sum exp(z - m)(z - m), rescaled when m grows, so the entropy comes out
  as log s - t / s with no cancellation between two large numbers (z: the tempered logits);
- the argmax, and the Gumbel-max draw: argmax of z + g, g from the same hashed uniforms engine/noise.py's
  native source uses, so the draw is the token the reference path picks;
- for the next step's self-conditioning, exp(z' - m) where z' is z rounded to the model's dtype (the
  reference keeps the self-conditioning logits in that dtype), stored in the model's dtype, with the running
  max m it is relative to per tile. The splits' figures are then combined in torch ([tokens, splits] small
  tensors), and one rescaling pass turns the stored tile values into the normalised softmax in place.

So a step writes [tokens, V] once, in bf16 (134 MB per canvas, the self-conditioning input the next step's
matmul reads), instead of a dozen fp32 passes. Tested against `reference` on CPU through TRITON_INTERPRET=1
(float32, float16); on a GPU in bf16 at the real shape by bench/kernels.py.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from engine.noise import gumbel
from kernels import tuning

# Hopper starting point until bench/kernels.py tunes it: 64 positions x 128 tokens per tile keeps the fp32
# tile and its exp/entropy temporaries in registers with 8 warps; 64 vocabulary splits give 4 x 64 = 256
# programs for a 256-token canvas, about two waves on 132 SMs.
DEFAULT_CONFIG = {"BLOCK_N": 64, "BLOCK_V": 128, "BLOCK_D": 64, "SPLITS": 64, "num_warps": 8, "num_stages": 3}
# Lower bound of the running max before any token is seen: finite, so that rescaling by exp(m - new_m) and
# (m - new_m) * s give exact zeros instead of inf - inf.
_NO_MAX = -1e30


def config_key(vocab: int, hidden: int, dtype: torch.dtype) -> str:
    """How kernels/configs/head.json names a shape (sizes there: canvas positions per step)."""
    return f"V={vocab},D={hidden},{tuning.dtype_name(dtype)}"


class HeadOutput(NamedTuple):
    argmax: torch.Tensor  # [N] int64, of the tempered logits
    sample: torch.Tensor  # [N] int64, Gumbel-max draw
    entropy: torch.Tensor  # [N] fp32, of softmax(tempered logits)
    self_cond_probs: torch.Tensor | None  # [N, V] model dtype: softmax(tempered logits rounded to the dtype)


def reference(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: torch.Tensor, softcap: float | None,
    keys: torch.Tensor, self_cond: bool = True,
) -> HeadOutput:
    """What the engine's reference step computes, op for op: hidden [N, D] (final-normed), weight [V, D] (the
    tied embedding), temperature [N] fp32, keys [N] int64 (engine/noise.py CounterNoise.sample_keys)."""
    logits = torch.nn.functional.linear(hidden, weight).float()
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    processed = logits / temperature[:, None]
    vocab = torch.arange(weight.shape[0], device=weight.device)
    sample = torch.argmax(processed + gumbel(keys[:, None], vocab), dim=-1)
    normalized = processed - processed.logsumexp(dim=-1, keepdim=True)
    entropy = -(normalized * torch.softmax(normalized, dim=-1)).sum(-1)
    probs = torch.softmax(processed.to(weight.dtype), dim=-1, dtype=torch.float32).to(weight.dtype) if self_cond else None
    return HeadOutput(torch.argmax(processed, dim=-1), sample, entropy, probs)


@triton.jit
def _mix32(x):
    """engine/noise.py's _mix32 on uint32 (wrapping multiplies, logical shifts)."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x5BD1E995
    return x ^ (x >> 16)


@triton.jit
def _head_kernel(
    h_ptr, w_ptr, temp_ptr, keys_ptr,
    part_ptr,  # [6, N, SPLITS] fp32: m, s, t, s of the rounded logits, best logit, best Gumbel score
    part_idx_ptr,  # [2, N, SPLITS] int64: argmax, sample
    probs_ptr, tile_max_ptr,  # [N, V] model dtype; [N, tiles] fp32
    num_rows, vocab, num_tiles,
    hidden: tl.constexpr, tiles_per_split: tl.constexpr,  # loop bounds: one compilation per model shape
    stride_h, stride_w, stride_p,
    softcap,
    HAS_CAP: tl.constexpr, SELF_COND: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    splits = tl.num_programs(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < num_rows
    rows64 = rows.to(tl.int64)
    temp = tl.load(temp_ptr + rows, mask=row_ok, other=1.0)
    keys = tl.load(keys_ptr + rows, mask=row_ok, other=0).to(tl.uint32)
    m = tl.full((BLOCK_N,), _NO_MAX, tl.float32)
    s = tl.zeros((BLOCK_N,), tl.float32)
    t = tl.zeros((BLOCK_N,), tl.float32)
    s_round = tl.zeros((BLOCK_N,), tl.float32)
    best = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    best_idx = tl.zeros((BLOCK_N,), tl.int64)
    drawn = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    drawn_idx = tl.zeros((BLOCK_N,), tl.int64)
    for i in range(tiles_per_split):
        tile = split * tiles_per_split + i
        if tile < num_tiles:
            cols = tile * BLOCK_V + tl.arange(0, BLOCK_V)
            col_ok = cols < vocab
            cols64 = cols.to(tl.int64)
            acc = tl.zeros((BLOCK_N, BLOCK_V), tl.float32)
            for d0 in range(0, hidden, BLOCK_D):
                ds = d0 + tl.arange(0, BLOCK_D)
                d_ok = ds < hidden
                a = tl.load(h_ptr + rows64[:, None] * stride_h + ds[None, :], mask=row_ok[:, None] & d_ok[None, :],
                            other=0.0)
                w = tl.load(w_ptr + cols64[None, :] * stride_w + ds[:, None], mask=col_ok[None, :] & d_ok[:, None],
                            other=0.0)
                acc = tl.dot(a, w, acc, input_precision=PRECISION)
            # The reference's lm_head returns the model dtype before its fp32 soft-cap: round the same way
            logits = acc.to(w_ptr.dtype.element_ty).to(tl.float32)
            if HAS_CAP:  # tanh(y) = 2 sigmoid(2y) - 1: tl.sigmoid exists on every backend, tanh does not
                logits = (2.0 * tl.sigmoid(2.0 * (logits / softcap)) - 1.0) * softcap
            z = tl.where(col_ok[None, :], logits / temp[:, None], float("-inf"))

            tile_best = tl.max(z, axis=1)
            tile_arg = tl.argmax(z, axis=1).to(tl.int64) + tile * BLOCK_V
            better = tile_best > best  # strictly: on a tie the lower token id stays, as torch.argmax keeps it
            best_idx = tl.where(better, tile_arg, best_idx)
            best = tl.where(better, tile_best, best)

            noise_bits = _mix32(keys[:, None] ^ cols[None, :].to(tl.uint32))
            uniform = ((noise_bits >> 8).to(tl.float32) + 0.5) * 5.960464477539063e-08  # 2**-24
            scores = tl.where(col_ok[None, :], z - tl.log(-tl.log(uniform)), float("-inf"))
            tile_drawn = tl.max(scores, axis=1)
            drawn_arg = tl.argmax(scores, axis=1).to(tl.int64) + tile * BLOCK_V
            better = tile_drawn > drawn
            drawn_idx = tl.where(better, drawn_arg, drawn_idx)
            drawn = tl.where(better, tile_drawn, drawn)

            new_m = tl.maximum(m, tile_best)
            alpha = tl.exp(m - new_m)
            # finite everywhere (0 past the vocabulary), so no 0 * inf can make a NaN
            shifted = tl.where(col_ok[None, :], z - new_m[:, None], 0.0)
            e = tl.where(col_ok[None, :], tl.exp(shifted), 0.0)
            t = alpha * (t + (m - new_m) * s) + tl.sum(e * shifted, axis=1)
            s = alpha * s + tl.sum(e, axis=1)
            if SELF_COND:
                rounded = tl.exp(z.to(probs_ptr.dtype.element_ty).to(tl.float32) - new_m[:, None])
                s_round = alpha * s_round + tl.sum(rounded, axis=1)
                tl.store(probs_ptr + rows64[:, None] * stride_p + cols64[None, :],
                         rounded.to(probs_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
                tl.store(tile_max_ptr + rows64 * num_tiles + tile, new_m, mask=row_ok)
            m = new_m
    part = rows64 * splits + split
    plane = num_rows * splits
    tl.store(part_ptr + part, m, mask=row_ok)
    tl.store(part_ptr + plane + part, s, mask=row_ok)
    tl.store(part_ptr + 2 * plane + part, t, mask=row_ok)
    tl.store(part_ptr + 3 * plane + part, s_round, mask=row_ok)
    tl.store(part_ptr + 4 * plane + part, best, mask=row_ok)
    tl.store(part_ptr + 5 * plane + part, drawn, mask=row_ok)
    tl.store(part_idx_ptr + part, best_idx, mask=row_ok)
    tl.store(part_idx_ptr + plane + part, drawn_idx, mask=row_ok)


@triton.jit
def _normalize_kernel(probs_ptr, tile_max_ptr, lse_ptr, vocab, num_tiles, stride_p, BLOCK_V: tl.constexpr):
    """probs[row, tile] *= exp(tile max - log-sum-exp): the stored exp(z' - running max) become softmax(z')."""
    row = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    cols = tile * BLOCK_V + tl.arange(0, BLOCK_V)
    col_ok = cols < vocab
    factor = tl.exp(tl.load(tile_max_ptr + row * num_tiles + tile) - tl.load(lse_ptr + row))
    ptrs = probs_ptr + row * stride_p + cols
    values = tl.load(ptrs, mask=col_ok, other=0.0).to(tl.float32)
    tl.store(ptrs, (values * factor).to(probs_ptr.dtype.element_ty), mask=col_ok)


def sampling_head(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: torch.Tensor, softcap: float | None,
    keys: torch.Tensor, self_cond: bool = True, config: dict | None = None,
) -> HeadOutput:
    """`reference`'s figures without its [N, V] fp32 tensors. hidden [N, D] in weight's dtype."""
    tuned = tuning.tuned("head", hidden.device, config_key(*weight.shape, weight.dtype), hidden.shape[0])
    config = {**DEFAULT_CONFIG, **(config or tuned)}
    block_n, block_v, block_d = config["BLOCK_N"], config["BLOCK_V"], config["BLOCK_D"]
    num_rows, dim = hidden.shape
    vocab = weight.shape[0]
    device = hidden.device
    num_tiles = triton.cdiv(vocab, block_v)
    splits = min(config["SPLITS"], num_tiles)
    tiles_per_split = triton.cdiv(num_tiles, splits)
    hidden, weight = hidden.contiguous(), weight.contiguous()
    part = torch.empty(6, num_rows, splits, dtype=torch.float32, device=device)
    part_idx = torch.empty(2, num_rows, splits, dtype=torch.int64, device=device)
    probs = torch.empty(num_rows, vocab, dtype=weight.dtype, device=device) if self_cond else part
    tile_max = torch.empty(num_rows, num_tiles, dtype=torch.float32, device=device) if self_cond else part
    _head_kernel[(triton.cdiv(num_rows, block_n), splits)](
        hidden, weight, temperature.to(torch.float32).contiguous(), keys.contiguous(), part, part_idx,
        probs, tile_max,
        num_rows, vocab, num_tiles, dim, tiles_per_split,
        hidden.stride(0), weight.stride(0), probs.stride(0) if self_cond else 0,
        float(softcap or 1.0),
        HAS_CAP=softcap is not None, SELF_COND=self_cond,
        PRECISION="ieee" if weight.dtype == torch.float32 else "tf32",
        BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
    )
    m, s, t, s_round, best, drawn = part.unbind(0)
    top = m.max(dim=1, keepdim=True).values
    weight_of_split = torch.exp(m - top)  # 0 for a split that saw no token (m = _NO_MAX)
    total = (weight_of_split * s).sum(dim=1)
    # sum p (z - top) over splits: each split's t is relative to its own max
    centred = (weight_of_split * (t + (m - top) * s)).sum(dim=1)
    entropy = torch.log(total) - centred / total
    # torch.max returns the first split on a tie: the lowest token ids, as torch.argmax over the vocabulary
    argmax = part_idx[0].gather(1, best.argmax(dim=1, keepdim=True)).squeeze(1)
    sample = part_idx[1].gather(1, drawn.argmax(dim=1, keepdim=True)).squeeze(1)
    if not self_cond:
        return HeadOutput(argmax, sample, entropy, None)
    lse = (top.squeeze(1) + torch.log((weight_of_split * s_round).sum(dim=1))).contiguous()
    _normalize_kernel[(num_rows, num_tiles)](probs, tile_max, lse, vocab, num_tiles, probs.stride(0), BLOCK_V=block_v)
    return HeadOutput(argmax, sample, entropy, probs)
