"""Attention of the canvas over its cached prefix plus itself, reading the KV cache where it lies.

The engine's reference path (engine/model/network.py `decode`) copies each layer's cached slots [start, kv_len) of
the batch's rows and appends the canvas' own keys and values ([B, S + L, Hkv, Dh], every layer, every step),
then runs scaled_dot_product_attention under the boolean mask of engine/model/cache.py `decoder_masks`. Here one
launch per layer does it all:

- The mask is computed from the row's committed length, exactly as decoder_masks defines it: a row with
  `length` committed tokens sees cache slots [lo, hi), hi = min(length, kv_len), lo = start in global layers
  and max(start, length - (window - 1)) in sliding ones, then the whole canvas. The loop runs over exactly
  those slots, so no other slot is ever loaded (the garbage past `length` included) and a sliding layer reads
  its window however large kv_len is (a CUDA graph's kv_len is the whole cache).
- Flash attention's online softmax in base 2, fp32 accumulators, scale 1.0 (q and k are RMS-normed).
- GQA: a program's BLOCK_M rows are (canvas position, query head) pairs of one kv head, so each key and value
  tile is loaded once for the H / Hkv heads that share it, not once per head.
- The head dimension is a single tile (BLOCK_D = Dh, a power of two): 256 in sliding layers and 512 in global
  ones, which FlashAttention does not support.

Nothing waits on the host: rows and lengths are read on the device, start, kv_len and the window are plain
arguments the kernel is not specialised on (no recompile when a commit moves them), so a CUDA graph holds it.

Tested against `canvas_attention_ref` on CPU through TRITON_INTERPRET=1 (float32 and float16; the
interpreter's bf16 dot is broken in Triton 3.6), and on a GPU in bf16 by bench/kernels.py.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from kernels import tuning

# Launch configuration by head dimension when kernels/configs/attention.json has none for this device and
# shape, chosen for Hopper (H100: 132 SMs, 228 KB of shared memory and 64K registers per SM):
# - BLOCK_M 32: a batch-1 canvas has 256 x H / Hkv query rows per kv head, 512 x 8 kv heads in sliding layers
#   and 2048 x 2 in global ones: 32-row tiles make 128 programs either way, about one per SM; 64-row tiles
#   would leave half of them idle.
# - A pipeline stage holds a key and a value tile, 2 x BLOCK_N x Dh x 2 bytes = 32 KB at (32, 256) and 64 KB
#   at (32, 512): two stages and the query tile (16 or 32 KB) fit; a third would leave nothing spare at 512.
# - The fp32 accumulator, BLOCK_M x Dh x 4 bytes (32 or 64 KB), is 32 or 64 registers a thread over 8 warps.
#   At 4 warps, or 64-wide key tiles, ptxas spills (sm_90, tests/kernels/offline_compile.py).
DEFAULT_CONFIGS = {
    256: {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    512: {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
}
SMALL_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}  # head dims up to 128 (tests)


def config_key(num_heads: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> str:
    """How kernels/configs/attention.json names a shape: query heads, kv heads, head dim, dtype."""
    return f"H={num_heads},Hkv={num_kv_heads},D={head_dim},{tuning.dtype_name(dtype)}"


@functools.cache  # once per layer kind and batch size: the launcher runs once per layer and step
def launch_config(device: torch.device, num_heads: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                  batch: int = 1) -> dict:
    """The stored configuration for this device, shape and batch of canvases (kernels/configs/attention.json,
    kernels/tuning.py, written by `bench/kernels.py --tune`), else the default for the head dimension."""
    default = DEFAULT_CONFIGS.get(head_dim, SMALL_CONFIG)
    return {**default, **tuning.tuned("attention", device, config_key(num_heads, num_kv_heads, head_dim, dtype), batch)}


@triton.jit
def _softmax_tile(q, k, v, is_key, acc, row_max, row_sum, PRECISION: tl.constexpr):
    """One key tile of the online softmax: k [D, N], v [N, D], is_key [N] -> the running (acc, max, sum).
    Every tile holds at least one key, so the running max is finite from the first tile on."""
    scores = tl.dot(q, k, input_precision=PRECISION) * 1.4426950408889634  # log2(e): exp2 is the fast one
    scores = tl.where(is_key[None, :], scores, float("-inf"))
    new_max = tl.maximum(row_max, tl.max(scores, 1))
    rescale = tl.exp2(row_max - new_max)
    p = tl.exp2(scores - new_max[:, None])
    row_sum = row_sum * rescale + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * rescale[:, None], input_precision=PRECISION)
    return acc, new_max, row_sum


@triton.jit(do_not_specialize=["start", "kv_len", "window"])
def _canvas_attention_kernel(
    q_ptr, k_ptr, v_ptr, cache_k_ptr, cache_v_ptr, out_ptr, lengths_ptr, rows_ptr,
    start, kv_len, window, canvas_len,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_ckr, stride_cks, stride_ckh, stride_cvr, stride_cvs, stride_cvh, stride_ob, stride_ot, stride_oh,
    GROUP: tl.constexpr,  # query heads per kv head
    HAS_ROWS: tl.constexpr,  # batch row b reads cache row rows[b] (else row b)
    HAS_WINDOW: tl.constexpr,  # a sliding layer
    PRECISION: tl.constexpr,  # "ieee" for float32 inputs (no TF32 rounding), the default "tf32" otherwise
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    kv_head = tl.program_id(2)
    pairs = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (canvas position, head of the group), position-major
    is_query = pairs < canvas_len * GROUP
    positions = pairs // GROUP
    heads = kv_head * GROUP + pairs % GROUP
    dims = tl.arange(0, BLOCK_D)
    q_rows = q_ptr + batch * stride_qb + positions * stride_qt + heads * stride_qh
    q = tl.load(q_rows[:, None] + dims[None, :], mask=is_query[:, None], other=0.0)  # [M, D]

    row = tl.load(rows_ptr + batch).to(tl.int64) if HAS_ROWS else batch
    length = tl.load(lengths_ptr + row).to(tl.int32)
    hi = tl.minimum(length, kv_len)
    lo = tl.zeros_like(length) + start
    if HAS_WINDOW:  # decoder_masks: slot >= length - (window - 1)
        lo = tl.maximum(lo, length - (window - 1))

    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    row_max = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
    cache_k = cache_k_ptr + row * stride_ckr + kv_head * stride_ckh
    cache_v = cache_v_ptr + row * stride_cvr + kv_head * stride_cvh
    for first in range(lo, hi, BLOCK_N):  # the visible cached slots, from the row's own bounds
        slots = first + tl.arange(0, BLOCK_N)
        is_key = slots < hi
        k = tl.load(cache_k + slots[None, :] * stride_cks + dims[:, None], mask=is_key[None, :], other=0.0)
        v = tl.load(cache_v + slots[:, None] * stride_cvs + dims[None, :], mask=is_key[:, None], other=0.0)
        acc, row_max, row_sum = _softmax_tile(q, k, v, is_key, acc, row_max, row_sum, PRECISION)
    canvas_k = k_ptr + batch * stride_kb + kv_head * stride_kh
    canvas_v = v_ptr + batch * stride_vb + kv_head * stride_vh
    for first in range(0, canvas_len, BLOCK_N):  # the whole canvas
        slots = first + tl.arange(0, BLOCK_N)
        is_key = slots < canvas_len
        k = tl.load(canvas_k + slots[None, :] * stride_kt + dims[:, None], mask=is_key[None, :], other=0.0)
        v = tl.load(canvas_v + slots[:, None] * stride_vt + dims[None, :], mask=is_key[:, None], other=0.0)
        acc, row_max, row_sum = _softmax_tile(q, k, v, is_key, acc, row_max, row_sum, PRECISION)

    out = acc / row_sum[:, None]
    out_rows = out_ptr + batch * stride_ob + positions * stride_ot + heads * stride_oh
    tl.store(out_rows[:, None] + dims[None, :], out.to(out_ptr.dtype.element_ty), mask=is_query[:, None])


def canvas_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_values: torch.Tensor,
    lengths: torch.Tensor,
    rows: torch.Tensor | None,
    start: int,
    kv_len: int,
    window: int | None,
    config: dict | None = None,
) -> torch.Tensor:
    """q [B, L, H, Dh] and the canvas' own k, v [B, L, Hkv, Dh]; one layer's cache keys and values
    [R, max_len, Hkv, Dh] and the committed lengths [R] (KVCache.lengths); rows [B]: the cache rows of the batch
    (None: rows 0..B-1, R == B); slots [start, kv_len) bound what is read (AttentionMask.start and decode's
    kv_len); window: the sliding window, None in global layers -> [B, L, H, Dh] in q's dtype."""
    batch, canvas_len, num_heads, head_dim = q.shape
    num_rows, max_len, num_kv_heads = cache_keys.shape[:3]
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"canvas_attention: the head dimension must be a power of two >= 16 (one tile), "
                         f"got {head_dim}")
    if num_heads % num_kv_heads:
        raise ValueError(f"canvas_attention: {num_heads} query heads are not a multiple of {num_kv_heads} kv heads")
    if k.shape != (batch, canvas_len, num_kv_heads, head_dim) or v.shape != k.shape:
        raise ValueError(f"canvas_attention: canvas k {tuple(k.shape)} and v {tuple(v.shape)} do not match "
                         f"q {tuple(q.shape)} and the cache's {num_kv_heads} kv heads")
    if cache_values.shape != cache_keys.shape or cache_keys.shape[3] != head_dim:
        raise ValueError(f"canvas_attention: cache keys {tuple(cache_keys.shape)} and values "
                         f"{tuple(cache_values.shape)} must be [rows, max_len, {num_kv_heads}, {head_dim}]")
    if (rows is None and num_rows != batch) or (rows is not None and rows.shape != (batch,)):
        raise ValueError(f"canvas_attention: {batch} canvases need rows [{batch}] or a cache of {batch} rows")
    if not 0 <= start <= kv_len <= max_len:
        raise ValueError(f"canvas_attention: need 0 <= start ({start}) <= kv_len ({kv_len}) <= max_len ({max_len})")
    if window is not None and window < 1:
        raise ValueError(f"canvas_attention: window must be a positive slot count or None, got {window}")
    if len({t.dtype for t in (q, k, v, cache_keys, cache_values)}) != 1:
        raise ValueError("canvas_attention: q, k, v and the cache must share one dtype")
    if cache_keys.stride(3) != 1 or cache_values.stride(3) != 1:
        raise ValueError("canvas_attention: the cache's head dimension must be contiguous (it is read in place)")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    config = {**launch_config(q.device, num_heads, num_kv_heads, head_dim, q.dtype, batch), **(config or {})}
    group = num_heads // num_kv_heads
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    grid = (triton.cdiv(canvas_len * group, config["BLOCK_M"]), batch, num_kv_heads)
    _canvas_attention_kernel[grid](
        q, k, v, cache_keys, cache_values, out, lengths, lengths if rows is None else rows,
        start, kv_len, window or 0, canvas_len,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
        *cache_keys.stride()[:3], *cache_values.stride()[:3], *out.stride()[:3],
        GROUP=group, HAS_ROWS=rows is not None, HAS_WINDOW=window is not None,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        BLOCK_M=config["BLOCK_M"], BLOCK_N=config["BLOCK_N"], BLOCK_D=head_dim,
        num_warps=config["num_warps"], num_stages=config["num_stages"],
    )
    return out


def canvas_attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache_keys: torch.Tensor,
    cache_values: torch.Tensor,
    lengths: torch.Tensor,
    rows: torch.Tensor | None,
    start: int,
    kv_len: int,
    window: int | None,
) -> torch.Tensor:
    """The engine's reference path with the same arguments: the batch rows' cached slots [start, kv_len) and
    the canvas concatenated, scaled_dot_product_attention under decoder_masks' mask -> [B, L, H, Dh]."""
    lengths = (lengths if rows is None else lengths[rows])[:, None]  # [B, 1]
    cached_keys = cache_keys[:, start:kv_len] if rows is None else cache_keys[rows, start:kv_len]
    cached_values = cache_values[:, start:kv_len] if rows is None else cache_values[rows, start:kv_len]
    keys = torch.cat((cached_keys, k), dim=1)  # [B, S + L, Hkv, Dh]
    values = torch.cat((cached_values, v), dim=1)
    slots = torch.arange(start, kv_len, device=q.device)
    visible = slots < lengths  # [B, S]
    if window is not None:
        visible &= slots >= lengths - (window - 1)
    canvas = torch.ones(q.shape[0], q.shape[1], dtype=torch.bool, device=q.device)
    mask = torch.cat((visible, canvas), dim=1)[:, None, None, :]  # [B, 1, 1, S + L]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), attn_mask=mask, scale=1.0, enable_gqa=True
    )  # [B, H, L, Dh]
    return out.transpose(1, 2)
