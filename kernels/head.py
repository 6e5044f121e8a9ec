"""Fused sampling head: lm_head, soft-cap, temperature and every per-position statistic of a denoising step
in one pass over the vocabulary, without the [tokens, V] logits ever reaching memory.

The engine's reference step (engine/runtime/generate.py) writes fp32 logits [tokens, 262144] (268 MB per canvas),
then tempers them, takes a softmax and its cumulative sum for the draw, an entropy (three more [tokens, V]
temporaries), an argmax, and keeps a rounded copy for the next step's self-conditioning softmax. Here each
program owns BLOCK_N positions and a contiguous split of the vocabulary, computes one [BLOCK_N, BLOCK_V]
logits tile at a time (a K loop over the hidden size on the tensor cores) and folds it into running
per-position figures:

- max m, s = sum exp(z - m) and t = sum exp(z - m)(z - m), rescaled when m grows, so the entropy comes out
  as log s - t / s with no cancellation between two large numbers (z: the tempered logits);
- the argmax;
- each tile's sum of exp(z - m) and the m it is relative to ([tokens, tiles], 2 MB per canvas): the draw is
  the native noise's inverse CDF (engine/runtime/noise.py: the first token whose cumulative probability passes
  u x total), so a cumulative sum over the tile sums finds the tile it lands in, and a second small launch
  recomputes that one tile's logits per position (a 128 x hidden product) to find the token;
- for the next step's self-conditioning, exp(z' - m) where z' is z rounded to the model's dtype (the
  reference keeps the self-conditioning logits in that dtype), stored in the model's dtype, and one
  rescaling pass turns those into the normalised softmax in place.

The draw's launch, one program per position, first combines the splits' figures ([tokens, splits], where
torch took some twenty small launches). So a step writes [tokens, V] once, in bf16 (134 MB per canvas, the
self-conditioning input the next step's matmul reads), instead of a dozen fp32 passes. Fusing the
self-conditioning product itself would need a [rows, 2816] fp32 accumulator per program, far past the
registers, or recomputing the logits per hidden tile: writing the bf16 softmax and leaving the product to
one cuBLAS GEMM is cheaper.

The draw matches the reference's token except where u x total falls within float32 rounding of a
cumulative-sum boundary (the sums run in another order). Tested against `reference` on CPU through
TRITON_INTERPRET=1 (float32, float16); on a GPU in bf16 at the real shape by bench/head.py.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from kernels import tuning

# Hopper starting point until bench/head.py --tune tunes it: 64 positions x 128 tokens per tile, its fp32
# temporaries over 8 warps; 64 vocabulary splits give 4 x 64 = 256 programs for a 256-token canvas, about two
# waves on 132 SMs. BLOCK_D 32, not 64: at 64 ptxas spills ~600 bytes a thread (sm_90,
# tests/kernels/offline_compile.py).
DEFAULT_CONFIG = {"BLOCK_N": 64, "BLOCK_V": 128, "BLOCK_D": 32, "SPLITS": 64, "num_warps": 8, "num_stages": 3}
# The draw's one-position programs: a BLOCK_V x 32 slice of the embedding at a time keeps it out of spills.
DRAW_CONFIG = {"BLOCK_D": 32, "num_warps": 4}
# Lower bound of the running max before any token is seen: finite, so that rescaling by exp(m - new_m) and
# (m - new_m) * s give exact zeros instead of inf - inf. A constexpr: compiled kernels read no other globals.
_NO_MAX = tl.constexpr(-1e30)


def config_key(vocab: int, hidden: int, dtype: torch.dtype) -> str:
    """How kernels/configs/head.json names a shape (sizes there: canvas positions per step)."""
    return f"V={vocab},D={hidden},{tuning.dtype_name(dtype)}"


class HeadOutput(NamedTuple):
    argmax: torch.Tensor  # [N] int64, of the tempered logits
    sample: torch.Tensor  # [N] int64, drawn by inverse CDF from the given uniforms
    entropy: torch.Tensor  # [N] fp32, of softmax(tempered logits)
    self_cond_probs: torch.Tensor | None  # [N, V] model dtype: softmax(tempered logits rounded to the dtype)


def reference(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: torch.Tensor, softcap: float | None,
    uniforms: torch.Tensor, self_cond: bool = True,
) -> HeadOutput:
    """What the engine's reference step computes, op for op: hidden [N, D] (final-normed), weight [V, D] (the
    tied embedding), temperature [N] fp32, uniforms [N] in [0, 1) (engine/runtime/noise.py CounterNoise.uniforms)."""
    logits = torch.nn.functional.linear(hidden, weight).float()
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    processed = logits / temperature[:, None]
    sample = inverse_cdf(torch.softmax(processed, dim=-1, dtype=torch.float32), uniforms)
    normalized = processed - processed.logsumexp(dim=-1, keepdim=True)
    entropy = -(normalized * torch.softmax(normalized, dim=-1)).sum(-1)
    probs = None
    if self_cond:
        probs = torch.softmax(processed.to(weight.dtype), dim=-1, dtype=torch.float32).to(weight.dtype)
    return HeadOutput(torch.argmax(processed, dim=-1), sample, entropy, probs)


def inverse_cdf(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """engine/runtime/noise.py's inverse_cdf, op for op: the first index whose cumulative weight passes
    u x total, per row (right=True: a zero weight is never drawn; past the end, the last index)."""
    cdf = weights.cumsum(dim=-1)
    target = (uniforms * cdf[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=weights.shape[-1] - 1)


@triton.jit
def _tempered(acc, temp, softcap, dtype: tl.constexpr, HAS_CAP: tl.constexpr):
    """lm_head sums (fp32) -> tempered logits, as the reference: rounded to the model dtype (its lm_head's
    output), soft-capped in fp32 (tanh(y) = 2 sigmoid(2y) - 1: tl.sigmoid exists on every backend, tanh does
    not), divided by the temperature."""
    logits = acc.to(dtype).to(tl.float32)
    if HAS_CAP:
        logits = (2.0 * tl.sigmoid(2.0 * (logits / softcap)) - 1.0) * softcap
    return logits / temp


@triton.jit
def _head_kernel(
    h_ptr, w_ptr, temp_ptr,
    part_ptr,  # [5, N, SPLITS] fp32: m, s, t, s of the rounded logits, best logit
    argmax_ptr,  # [N, SPLITS] int64
    probs_ptr,  # [N, V] model dtype
    tile_max_ptr, tile_sum_ptr,  # [N, tiles] fp32: the running max at each tile, the tile's sum exp(z - it)
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
    m = tl.full((BLOCK_N,), _NO_MAX, tl.float32)
    s = tl.zeros((BLOCK_N,), tl.float32)
    t = tl.zeros((BLOCK_N,), tl.float32)
    s_round = tl.zeros((BLOCK_N,), tl.float32)
    best = tl.full((BLOCK_N,), float("-inf"), tl.float32)
    best_idx = tl.zeros((BLOCK_N,), tl.int64)
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
            z = _tempered(acc, temp[:, None], softcap, w_ptr.dtype.element_ty, HAS_CAP)
            z = tl.where(col_ok[None, :], z, float("-inf"))

            tile_best = tl.max(z, axis=1)
            tile_arg = tl.argmax(z, axis=1).to(tl.int64) + tile * BLOCK_V
            better = tile_best > best  # strictly: on a tie the lower token id stays, as torch.argmax keeps it
            best_idx = tl.where(better, tile_arg, best_idx)
            best = tl.where(better, tile_best, best)

            new_m = tl.maximum(m, tile_best)
            alpha = tl.exp(m - new_m)
            # finite everywhere (0 past the vocabulary), so no 0 * inf can make a NaN
            shifted = tl.where(col_ok[None, :], z - new_m[:, None], 0.0)
            e = tl.where(col_ok[None, :], tl.exp(shifted), 0.0)
            tile_sum = tl.sum(e, axis=1)
            t = alpha * (t + (m - new_m) * s) + tl.sum(e * shifted, axis=1)
            s = alpha * s + tile_sum
            tl.store(tile_max_ptr + rows64 * num_tiles + tile, new_m, mask=row_ok)
            tl.store(tile_sum_ptr + rows64 * num_tiles + tile, tile_sum, mask=row_ok)
            if SELF_COND:
                rounded = tl.exp(z.to(probs_ptr.dtype.element_ty).to(tl.float32) - new_m[:, None])
                s_round = alpha * s_round + tl.sum(rounded, axis=1)
                tl.store(probs_ptr + rows64[:, None] * stride_p + cols64[None, :],
                         rounded.to(probs_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
            m = new_m
    part = rows64 * splits + split
    plane = num_rows * splits
    tl.store(part_ptr + part, m, mask=row_ok)
    tl.store(part_ptr + plane + part, s, mask=row_ok)
    tl.store(part_ptr + 2 * plane + part, t, mask=row_ok)
    tl.store(part_ptr + 3 * plane + part, s_round, mask=row_ok)
    tl.store(part_ptr + 4 * plane + part, best, mask=row_ok)
    tl.store(argmax_ptr + part, best_idx, mask=row_ok)


@triton.jit
def _draw_kernel(
    h_ptr, w_ptr, temp_ptr, uniforms_ptr,
    part_ptr, part_argmax_ptr, tile_max_ptr, tile_sum_ptr,  # the head kernel's figures (see there)
    sample_ptr, argmax_ptr, entropy_ptr, lse_ptr,  # [N] each
    num_rows, num_splits, num_tiles, vocab, stride_h, stride_w, softcap,
    hidden: tl.constexpr, HAS_CAP: tl.constexpr, SELF_COND: tl.constexpr, BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr, SPLITS_BLOCK: tl.constexpr, TILES_BLOCK: tl.constexpr,
):
    """One position per program. First the splits' figures combined: the entropy, the argmax (the lowest token
    id on a tie, as torch.argmax) and the log-sum-exp of the rounded logits for the normalising pass. Then the
    draw: a cumulative sum over the tile sums, all relative to the top max, finds the tile u x total lands in;
    that tile is recomputed (a BLOCK_V x hidden product) and the first token whose cumulative exp(z - top)
    passes the target drawn. Past the tile's end (rounding) its last token."""
    row = tl.program_id(0).to(tl.int64)
    splits = tl.arange(0, SPLITS_BLOCK)
    split_ok = splits < num_splits
    part = part_ptr + row * num_splits + splits
    plane = num_rows * num_splits
    m = tl.load(part, mask=split_ok, other=_NO_MAX)
    s = tl.load(part + plane, mask=split_ok, other=0.0)
    t = tl.load(part + 2 * plane, mask=split_ok, other=0.0)
    best = tl.load(part + 4 * plane, mask=split_ok, other=float("-inf"))
    top = tl.max(m, axis=0)
    weight = tl.exp(m - top)  # 0 for a split that saw no token (m = _NO_MAX)
    total = tl.sum(weight * s, axis=0)
    centred = tl.sum(weight * (t + (m - top) * s), axis=0)  # sum p (z - top): each t is relative to its own m
    tl.store(entropy_ptr + row, tl.log(total) - centred / total)
    best_split = tl.argmax(best, axis=0, tie_break_left=True)  # the lowest split holds the lowest ids
    part_argmax = tl.load(part_argmax_ptr + row * num_splits + splits, mask=split_ok, other=0)
    tl.store(argmax_ptr + row, tl.sum(tl.where(splits == best_split, part_argmax, 0), axis=0))
    if SELF_COND:
        s_round = tl.load(part + 3 * plane, mask=split_ok, other=0.0)
        tl.store(lse_ptr + row, top + tl.log(tl.sum(weight * s_round, axis=0)))

    tiles = tl.arange(0, TILES_BLOCK)
    tile_ok = tiles < num_tiles
    tile_max = tl.load(tile_max_ptr + row * num_tiles + tiles, mask=tile_ok, other=_NO_MAX)
    tile_sum = tl.load(tile_sum_ptr + row * num_tiles + tiles, mask=tile_ok, other=0.0)
    cumulative = tl.cumsum(tl.where(tile_ok, tile_sum * tl.exp(tile_max - top), 0.0), axis=0)
    target = tl.load(uniforms_ptr + row).to(tl.float32) * tl.sum(tl.where(tiles == num_tiles - 1, cumulative, 0.0),
                                                                  axis=0)
    # the first tile whose cumulative sum passes the target (searchsorted, right=True)
    tile = tl.minimum(tl.sum((tile_ok & (cumulative <= target)).to(tl.int32), axis=0), num_tiles - 1)
    below = tl.sum(tl.where(tiles == tile - 1, cumulative, 0.0), axis=0)  # 0 before the first tile

    cols = tile * BLOCK_V + tl.arange(0, BLOCK_V)
    col_ok = cols < vocab
    acc = tl.zeros((BLOCK_V,), tl.float32)
    for d0 in range(0, hidden, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_ok = ds < hidden
        h = tl.load(h_ptr + row * stride_h + ds, mask=d_ok, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols[:, None] * stride_w + ds[None, :], mask=col_ok[:, None] & d_ok[None, :], other=0.0)
        acc += tl.sum(w.to(tl.float32) * h[None, :], axis=1)
    z = _tempered(acc, tl.load(temp_ptr + row), softcap, w_ptr.dtype.element_ty, HAS_CAP)
    e = tl.where(col_ok, tl.exp(z - top), 0.0)
    passed = col_ok & (below + tl.cumsum(e, axis=0) > target)
    last = tl.max(tl.where(col_ok, cols, 0), axis=0)
    tl.store(sample_ptr + row, tl.min(tl.where(passed, cols, last), axis=0).to(tl.int64))


# Tiles of a row one _normalize_kernel program rescales: 32 x 128 bf16, 8 KB, 32 per thread at 4 warps in
# 16-byte loads, so a canvas is 16 K programs rather than 512 K programs of one element per thread.
NORMALIZE_TILES = 32


@triton.jit
def _normalize_kernel(probs_ptr, tile_max_ptr, lse_ptr, vocab, num_tiles, stride_p, BLOCK_V: tl.constexpr,
                      TILES: tl.constexpr):
    """probs[row, tile] *= exp(tile max - log-sum-exp) for TILES tiles of a row: the stored exp(z' - running
    max) become softmax(z')."""
    row = tl.program_id(0).to(tl.int64)
    tiles = tl.program_id(1) * TILES + tl.arange(0, TILES)
    tile_ok = tiles < num_tiles
    cols = tiles[:, None] * BLOCK_V + tl.arange(0, BLOCK_V)[None, :]  # [TILES, BLOCK_V]
    col_ok = tile_ok[:, None] & (cols < vocab)
    tile_max = tl.load(tile_max_ptr + row * num_tiles + tiles, mask=tile_ok, other=0.0)
    factor = tl.exp(tile_max - tl.load(lse_ptr + row))
    ptrs = probs_ptr + row * stride_p + cols
    values = tl.load(ptrs, mask=col_ok, other=0.0).to(tl.float32)
    tl.store(ptrs, (values * factor[:, None]).to(probs_ptr.dtype.element_ty), mask=col_ok)


def sampling_head(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: torch.Tensor, softcap: float | None,
    uniforms: torch.Tensor, self_cond: bool = True, config: dict | None = None, out: torch.Tensor | None = None,
) -> HeadOutput:
    """`reference`'s figures without its [N, V] fp32 tensors. hidden [N, D] in weight's dtype.

    out: where the self-conditioning softmax goes ([N, V], contiguous, weight's dtype), for a caller that
    keeps it in a buffer of its own: the engine's step writes it over the one the step began by reading,
    which spares a CUDA graph copying 134 MB per canvas back into its static buffer every step."""
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
    temperature = temperature.to(torch.float32).contiguous()
    softcap_value = float(softcap or 1.0)
    part = torch.empty(5, num_rows, splits, dtype=torch.float32, device=device)
    part_argmax = torch.empty(num_rows, splits, dtype=torch.int64, device=device)
    tile_max = torch.empty(num_rows, num_tiles, dtype=torch.float32, device=device)
    tile_sum = torch.empty(num_rows, num_tiles, dtype=torch.float32, device=device)
    if out is not None and (tuple(out.shape) != (num_rows, vocab) or out.dtype != weight.dtype
                            or not out.is_contiguous()):
        raise ValueError(f"sampling_head: out must be a contiguous [{num_rows}, {vocab}] {weight.dtype} tensor, not "
                         f"{out.dtype} {list(out.shape)}")
    probs = tile_max
    if self_cond:
        probs = out if out is not None else torch.empty(num_rows, vocab, dtype=weight.dtype, device=device)
    _head_kernel[(triton.cdiv(num_rows, block_n), splits)](
        hidden, weight, temperature, part, part_argmax, probs, tile_max, tile_sum,
        num_rows, vocab, num_tiles, dim, tiles_per_split,
        hidden.stride(0), weight.stride(0), probs.stride(0),
        softcap_value,
        HAS_CAP=softcap is not None, SELF_COND=self_cond,
        PRECISION="ieee" if weight.dtype == torch.float32 else "tf32",
        BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
    )
    sample, argmax = (torch.empty(num_rows, dtype=torch.int64, device=device) for _ in range(2))
    entropy, lse = (torch.empty(num_rows, dtype=torch.float32, device=device) for _ in range(2))
    _draw_kernel[(num_rows,)](
        hidden, weight, temperature, uniforms.contiguous(), part, part_argmax, tile_max, tile_sum,
        sample, argmax, entropy, lse,
        num_rows, splits, num_tiles, vocab, hidden.stride(0), weight.stride(0), softcap_value,
        hidden=dim, HAS_CAP=softcap is not None, SELF_COND=self_cond, BLOCK_V=block_v,
        BLOCK_D=DRAW_CONFIG["BLOCK_D"], SPLITS_BLOCK=triton.next_power_of_2(splits),
        TILES_BLOCK=triton.next_power_of_2(num_tiles), num_warps=DRAW_CONFIG["num_warps"],
    )
    if not self_cond:
        return HeadOutput(argmax, sample, entropy, None)
    tiles = min(NORMALIZE_TILES, triton.next_power_of_2(num_tiles))
    _normalize_kernel[(num_rows, triton.cdiv(num_tiles, tiles))](probs, tile_max, lse, vocab, num_tiles,
                                                                 probs.stride(0), BLOCK_V=block_v, TILES=tiles)
    return HeadOutput(argmax, sample, entropy, probs)
