"""Fused mixture-of-experts for the canvas: route-sorted grouped GEMMs with the GELU gate fused in.

The engine's reference path (engine/model/layers.py `Experts`) sorts the token-expert pairs by expert and runs
one grouped GEMM per projection, with the gate activation, the product with `up` and the routing weights as
separate elementwise passes over [pairs, I] and [pairs, D] tensors, and with FP8 weights (engine/weights/quantize.py)
a dequantized bf16 copy of every expert's weights per step. Here, as in vLLM's fused_moe:

1. `align`: the pairs sorted by expert, each expert's group padded to a multiple of the tile height
   BLOCK_M (padding rows point past the last pair), and the expert of every tile, sized by a static bound
   (pairs + experts x (BLOCK_M - 1)), so nothing waits on the host and a CUDA graph holds it. `align` does it
   in some twenty small torch ops (the reference); `align_fused` in two launches of a program per chunk of
   pairs: each counts its chunk per expert (a histogram), then each sums the counts of the chunks before it,
   lays out the groups and places its pairs, stable within each expert, so both give the same tensors.
2. One launch for gate/up: each program owns BLOCK_M pairs of one expert and BLOCK_N columns of the
   intermediate, accumulates the gate and the up product side by side in fp32, and stores only
   gelu_tanh(gate) * up, [pairs, I].
3. One launch for down: [pairs, I] x down[e]^T, times the pair's routing weight, stored per pair in the
   activation dtype; then one more sums each token's top-k pairs in fp32 and casts the sum, as the reference
   does in two. The reference rounds each pair to that dtype too (its grouped GEMM's output, before the fp32
   product with the routing weight); here the rounding comes after that product, which is exact to fp32, so
   a pair carries one rounding either way, and the [pairs, D] intermediate is half the bytes of fp32 (bf16:
   2 x 23 MB written and read per layer at batch 1).

FP8 weights (e4m3 with a float32 scale per output row) are read as stored, one byte per weight, upcast in
registers, and the scale multiplies the fp32 accumulator: (x W^T) * s = x (W s)^T exactly in real
arithmetic, so only the rounding order differs from the dequantize-then-multiply reference.

NF4 weights (bitsandbytes' 4-bit NormalFloat, engine/weights/quantize.py: uint8 codes [E, out, in/2], two per byte
with the even input position in the high nibble, and a float32 absmax per 64 inputs) are read as stored,
half a byte per weight: each tile's bytes are split into their two nibbles in registers and interleaved back
into input order, each code looks its level up in the 16-entry codebook (64 bytes, which stay in cache),
and the level times its block's absmax, rounded to the activation dtype, is the weight the dot sees: the
same value, computed the same way, as the reference's dequantized copy, which never exists here. The absmax
varies along the reduction, so unlike FP8's it cannot wait for the accumulator; BLOCK_K is a multiple of
the 64-weight block, so a tile holds whole blocks and loads one absmax per block and row. Compiled for
sm_90 (without a GPU, through Triton's ptxas), the gate/up launch takes 89 KB of shared memory at a
canvas's tiles (32 x 64 x 64, 3 stages; bf16 weights take 40 KB): the software pipeliner stages the codebook
lookups too. Its speed on a GPU is not measured yet.

Tested against the reference on CPU through TRITON_INTERPRET=1 (float32 and float16; the interpreter's bf16
dot is broken in Triton 3.6), and on a GPU in bf16 by bench/kernels.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels import tuning

# Launch configuration when kernels/configs/moe.json has none for this device and shape, its BLOCK_M chosen by
# `row_tile` from the pairs per expert; 8 warps, as at 4 the FP8 gate/up launch spills (sm_90,
# tests/kernels/offline_compile.py).
DEFAULT_CONFIG = {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3}
# Every row tile of an expert reads that expert's whole weight slice again. A canvas routes 256 x batch tokens
# to 8 of 128 experts: an expert's pairs are Binomial(256 x batch, 1/16), 16 x batch on average. With 16-row
# tiles that is 1.43 tiles per expert at batch 1 and 4.47 at batch 4 (the expectation of ceil(pairs / 16));
# with tiles twice the mean, 1.00 and 1.00 (32 and 128 rows): the padding rows cost tensor-core time, which a
# step has to spare, the re-reads L2 traffic, which it has not (bf16: 45.6 GB of expert weights a step).
MAX_ROW_TILE = 128
# NF4 tiles of 64 rows and more take 2 stages: the pipeliner stages the codebook lookups too, and at 3 the
# gate/up launch of a batch-4 step needs 113 KB of shared memory, past Ada's 99 KB (65 KB at 2;
# tests/kernels/offline_compile.py). A tuned entry may give Hopper its third stage back.
NF4_WIDE_STAGES = 2
NF4_BLOCK = 64  # NF4 weights per absmax: engine/weights/quantize.py's (bitsandbytes' blocksize=64)


def config_key(num_experts: int, hidden: int, inter: int, dtype: torch.dtype, weight_dtype: torch.dtype | str) -> str:
    """How kernels/configs/moe.json names a shape: experts, hidden, intermediate, activation and weight dtypes
    (NF4 weights: "nf4")."""
    return f"E={num_experts},D={hidden},I={inter},{tuning.dtype_name(dtype)},{tuning.dtype_name(weight_dtype)}"


def weight_format(gate_up: torch.Tensor) -> torch.dtype | str:
    """What config_key calls these expert weights: their dtype, or "nf4" for NF4 codes (uint8)."""
    return "nf4" if gate_up.dtype == torch.uint8 else gate_up.dtype


def tuned_config(device: torch.device, num_experts: int, hidden: int, inter: int, dtype: torch.dtype,
                 weight_dtype: torch.dtype | str, num_pairs: int) -> dict:
    """The stored launch configuration for this device and shape at the smallest tuned pair count that is
    at least `num_pairs` (the largest otherwise); {} when none is stored (DEFAULT_CONFIG then).

    kernels/configs/moe.json (kernels/tuning.py), sized by token-expert pairs, written by
    `bench/kernels.py --tune`."""
    return tuning.tuned("moe", device, config_key(num_experts, hidden, inter, dtype, weight_dtype), num_pairs)


def row_tile(num_pairs: int, num_experts: int) -> int:
    """BLOCK_M for this many token-expert pairs: the power of two at least twice the pairs per expert, 16 to
    MAX_ROW_TILE (16 up to 8 pairs per expert, 32 up to 16: a batch-1 canvas, 128 from 33: batch 4)."""
    per_expert = -(-num_pairs // num_experts)
    return min(MAX_ROW_TILE, max(16, triton.next_power_of_2(2 * per_expert)))


def default_config(num_pairs: int, num_experts: int, nf4: bool) -> dict:
    """DEFAULT_CONFIG with the row tile for this many pairs (and NF4's stages at wide tiles)."""
    block_m = row_tile(num_pairs, num_experts)
    stages = NF4_WIDE_STAGES if nf4 and block_m >= 64 else DEFAULT_CONFIG["num_stages"]
    return {**DEFAULT_CONFIG, "BLOCK_M": block_m, "num_stages": stages}


def pair_bound(num_pairs: int, num_experts: int, block_m: int) -> int:
    """Rows of the sorted, padded pairs whatever the routing: each expert's group pads by under a tile, and
    the whole to a multiple of the tile height (static, so a CUDA graph holds it)."""
    return (num_pairs + num_experts * (block_m - 1) + block_m - 1) // block_m * block_m


def align(experts: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """experts [T, K] -> (sorted pair ids [P] int32 with padding = T*K, the expert of each tile [P / block_m]
    int32 (num_experts past the last used tile), the padded pair count [1] int32); P is a static bound."""
    flat = experts.reshape(-1)
    num_pairs = flat.numel()
    bound = pair_bound(num_pairs, num_experts, block_m)
    # scatter_add, not bincount: bincount sizes its output from the data, a host sync a CUDA graph cannot hold
    counts = torch.zeros(num_experts, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    padded_ends = torch.cumsum(padded, 0)
    group_starts = padded_ends - padded
    order = torch.sort(flat, stable=True).indices  # pairs grouped by expert, in pair order within each
    sorted_experts = flat[order]
    first_of_expert = torch.cumsum(counts, 0) - counts
    rank = torch.arange(num_pairs, device=flat.device) - first_of_expert[sorted_experts]
    sorted_ids = torch.full((bound,), num_pairs, dtype=torch.int32, device=flat.device)
    sorted_ids[group_starts[sorted_experts] + rank] = order.to(torch.int32)
    tile_starts = torch.arange(0, bound, block_m, device=flat.device)
    tile_experts = torch.searchsorted(padded_ends, tile_starts, right=True).to(torch.int32)
    return sorted_ids, tile_experts, padded_ends[-1:].to(torch.int32)


ALIGN_CHUNK = 64  # pairs a program of _align_scatter places: a [64, experts] one-hot in registers
PREFIX_ROWS = 16  # chunks' counts _align_scatter sums at a time: [16, bins] int32, 32 registers a thread
TILE_BLOCK = 16  # tiles whose expert _align_scatter finds at a time: a [16, bins] comparison
FILL_BLOCK = 256  # padding slots _align_counts fills at a time


@triton.jit
def _align_counts(
    ids_ptr, chunk_counts_ptr, sorted_ids_ptr, num_pairs, bound, slots_per_program,
    num_experts: tl.constexpr, CHUNK: tl.constexpr, BINS: tl.constexpr, FILL_BLOCK: tl.constexpr,
):
    """A program per chunk of pairs: its count of each expert, and its share of the sorted ids filled with
    padding (the scatter writes the real ones over it)."""
    chunk = tl.program_id(0)
    offsets = chunk * CHUNK + tl.arange(0, CHUNK)
    ids = tl.load(ids_ptr + offsets, mask=offsets < num_pairs, other=num_experts).to(tl.int32)
    # past-the-end pairs land in bin num_experts, never read
    tl.store(chunk_counts_ptr + chunk * BINS + tl.arange(0, BINS), tl.histogram(ids, BINS))
    first = chunk * slots_per_program
    for start in range(first, first + slots_per_program, FILL_BLOCK):
        slots = start + tl.arange(0, FILL_BLOCK)
        ok = (slots < first + slots_per_program) & (slots < bound)
        tl.store(sorted_ids_ptr + slots, tl.zeros((FILL_BLOCK,), tl.int32) + num_pairs, mask=ok)


@triton.jit
def _align_scatter(
    ids_ptr, chunk_counts_ptr, sorted_ids_ptr, tile_experts_ptr, num_padded_ptr,
    num_pairs, num_chunks, num_tiles, tiles_per_program,
    num_experts: tl.constexpr, BLOCK_M: tl.constexpr, CHUNK: tl.constexpr, BINS: tl.constexpr,
    PREFIX_ROWS: tl.constexpr, TILE_BLOCK: tl.constexpr,
):
    """A program per chunk: from every chunk's counts, each expert's total and its count in the chunks before
    this one; the groups padded to whole tiles; each pair to its expert's group start + the same expert's
    pairs in earlier chunks + those before it in this chunk, so pairs keep their order within an expert
    (align's stable sort); and its share of the tiles' experts. Program 0 writes the padded count."""
    chunk = tl.program_id(0)
    bins = tl.arange(0, BINS)
    total = tl.zeros((BINS,), tl.int32)
    before = tl.zeros((BINS,), tl.int32)
    for first in range(0, num_chunks, PREFIX_ROWS):
        rows = first + tl.arange(0, PREFIX_ROWS)
        counts = tl.load(chunk_counts_ptr + rows[:, None] * BINS + bins[None, :], mask=(rows < num_chunks)[:, None],
                         other=0)
        total += tl.sum(counts, axis=0)
        before += tl.sum(tl.where((rows < chunk)[:, None], counts, 0), axis=0)
    counts = tl.where(bins < num_experts, total, 0)
    padded = (counts + BLOCK_M - 1) // BLOCK_M * BLOCK_M
    ends = tl.cumsum(padded, axis=0)
    if chunk == 0:
        tl.store(num_padded_ptr, tl.sum(padded, axis=0))

    offsets = chunk * CHUNK + tl.arange(0, CHUNK)
    real = offsets < num_pairs
    ids = tl.load(ids_ptr + offsets, mask=real, other=num_experts).to(tl.int32)
    onehot = (ids[:, None] == bins[None, :]).to(tl.int32)  # [CHUNK, BINS]
    before_in_chunk = tl.sum((tl.cumsum(onehot, axis=0) - onehot) * onehot, axis=1)
    base = before + ends - padded  # group starts, plus this expert's pairs in earlier chunks
    destination = tl.sum(onehot * base[None, :], axis=1) + before_in_chunk
    tl.store(sorted_ids_ptr + destination, offsets.to(tl.int32), mask=real)

    # the expert of tile t: how many experts' padded groups end at or before its first row (align's
    # searchsorted(right=True)); experts past the last hold no rows and end where it does
    ends_or_never = tl.where(bins < num_experts, ends, 2147483647)
    first_tile = chunk * tiles_per_program
    for start in range(first_tile, first_tile + tiles_per_program, TILE_BLOCK):
        tiles = start + tl.arange(0, TILE_BLOCK)
        expert = tl.sum((ends_or_never[None, :] <= (tiles * BLOCK_M)[:, None]).to(tl.int32), axis=1)
        tl.store(tile_experts_ptr + tiles, expert, mask=(tiles < first_tile + tiles_per_program) & (tiles < num_tiles))


def align_fused(experts: torch.Tensor, num_experts: int, block_m: int):
    """`align`'s three tensors in two launches instead of some twenty small torch ops, both a program per
    chunk of pairs: counting (the histograms, the padding), then placing (the prefix over the chunks' counts,
    the pairs, the tiles' experts). One program walking the chunks serially took 32 to 128 dependent steps
    a layer (batch 1 to 4); here the longest walk is the prefix's, 2 to 8 steps of 16 chunks."""
    flat = experts.reshape(-1)
    num_pairs = flat.numel()
    bound = pair_bound(num_pairs, num_experts, block_m)
    num_tiles = bound // block_m
    num_chunks = triton.cdiv(num_pairs, ALIGN_CHUNK)
    bins = triton.next_power_of_2(num_experts + 1)  # one spare bin for the padding of the last chunk
    device = flat.device
    chunk_counts = torch.empty(num_chunks, bins, dtype=torch.int32, device=device)
    sorted_ids = torch.empty(bound, dtype=torch.int32, device=device)
    tile_experts = torch.empty(num_tiles, dtype=torch.int32, device=device)
    num_padded = torch.empty(1, dtype=torch.int32, device=device)
    flat = flat.contiguous()
    _align_counts[(num_chunks,)](flat, chunk_counts, sorted_ids, num_pairs, bound, triton.cdiv(bound, num_chunks),
                                 num_experts=num_experts, CHUNK=ALIGN_CHUNK, BINS=bins, FILL_BLOCK=FILL_BLOCK)
    _align_scatter[(num_chunks,)](
        flat, chunk_counts, sorted_ids, tile_experts, num_padded, num_pairs, num_chunks, num_tiles,
        triton.cdiv(num_tiles, num_chunks), num_experts=num_experts, BLOCK_M=block_m, CHUNK=ALIGN_CHUNK, BINS=bins,
        PREFIX_ROWS=PREFIX_ROWS, TILE_BLOCK=TILE_BLOCK,
    )
    return sorted_ids, tile_experts, num_padded


@triton.jit
def gelu_tanh(x):
    """GELU, tanh approximation, in float32: 1 + tanh(y) written 2 sigmoid(2y), as tl.sigmoid exists on every
    backend and tanh does not."""
    inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return 0.5 * x * (2.0 * tl.sigmoid(2.0 * inner))


@triton.jit
def _weight_tile(
    w_base, s_base, code_ptr, rows_n, row_ok, k0, k_in,
    stride_wn, stride_wk, stride_sn, stride_sk,
    NF4: tl.constexpr, QBLOCK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """W[rows_n, k0 : k0 + BLOCK_K] transposed, [BLOCK_K, BLOCK_N]: as stored, or NF4 dequantized to float32."""
    ks = k0 + tl.arange(0, BLOCK_K)
    k_ok = ks < k_in
    if NF4:
        js = k0 // 2 + tl.arange(0, BLOCK_K // 2)  # byte j holds codes 2j (high nibble) and 2j + 1 (low)
        packed = tl.load(w_base + rows_n[:, None] * stride_wn + js[None, :] * stride_wk,
                         mask=row_ok[:, None] & (2 * js < k_in)[None, :], other=0).to(tl.int32)
        codes = tl.interleave(packed >> 4, packed & 0xF)  # [BLOCK_N, BLOCK_K], in input order
        # one absmax per block, broadcast over its weights in registers (indexing it per weight instead doubles
        # the shared memory the software pipeliner stages: 135 KB against 71 KB for gate/up at BLOCK_K 64)
        blocks = k0 // QBLOCK + tl.arange(0, BLOCK_K // QBLOCK)
        absmax = tl.load(s_base + rows_n[:, None] * stride_sn + blocks[None, :] * stride_sk,
                         mask=row_ok[:, None] & (blocks * QBLOCK < k_in)[None, :], other=0.0)
        levels = tl.reshape(tl.load(code_ptr + codes), (BLOCK_N, BLOCK_K // QBLOCK, QBLOCK))
        w = tl.trans(tl.reshape(levels * absmax[:, :, None], (BLOCK_N, BLOCK_K)))
    else:
        w = tl.load(w_base + rows_n[None, :] * stride_wn + ks[:, None] * stride_wk,
                    mask=k_ok[:, None] & row_ok[None, :], other=0.0)
        if w.dtype == tl.float8e4nv:  # e4m3 -> bf16 goes through an f16 -> bf16 cvt that only sm_90 has; via
            w = w.to(tl.float32)  # float32 it compiles for Ada too (tests/kernels/offline_compile.py)
    return w


@triton.jit
def _grouped_gemm(
    a_ptr, w_ptr, scale_ptr, code_ptr, c_ptr, routing_ptr,
    sorted_ids_ptr, tile_experts_ptr, num_padded_ptr,
    num_pairs,
    n_out: tl.constexpr, k_in: tl.constexpr,  # model dimensions: one compilation per projection shape
    stride_am, stride_we, stride_wn, stride_wk, stride_se, stride_sn, stride_sk, stride_cm,
    top_k: tl.constexpr,
    A_BY_TOKEN: tl.constexpr,  # rows of A are tokens (pair // top_k) rather than pairs
    GATED: tl.constexpr,  # W holds [gate; up] (2 * n_out rows): store gelu_tanh(gate) * up
    SCALED: tl.constexpr,  # per-row weight scales on the accumulator (FP8 weights)
    NF4: tl.constexpr,  # W is NF4 codes with a per-block absmax (scale_ptr) and the codebook (code_ptr)
    QBLOCK: tl.constexpr,  # NF4: weights per absmax
    ROUTED: tl.constexpr,  # multiply by the pair's routing weight
    DENSE: tl.constexpr,  # no routing: row i is pair i, every row uses the one weight matrix
    PRECISION: tl.constexpr,  # "ieee" for float32 inputs (no TF32 rounding), the default "tf32" otherwise
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if DENSE:  # a plain linear (kernels/linear.py): the rows in order, one weight matrix
        expert = 0
        pairs = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    else:
        if pid_m * BLOCK_M >= tl.load(num_padded_ptr):
            return
        expert = tl.load(tile_experts_ptr + pid_m).to(tl.int64)
        pairs = tl.load(sorted_ids_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    real = pairs < num_pairs
    rows = pairs // top_k if A_BY_TOKEN else pairs
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < n_out
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    w_base = w_ptr + expert * stride_we
    s_base = scale_ptr + expert * stride_se
    for k0 in range(0, k_in, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < k_in
        a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :], mask=real[:, None] & k_ok[None, :], other=0.0)
        w = _weight_tile(w_base, s_base, code_ptr, cols, col_ok, k0, k_in, stride_wn, stride_wk, stride_sn,
                         stride_sk, NF4, QBLOCK, BLOCK_N, BLOCK_K)
        acc = tl.dot(a, w.to(a.dtype), acc, input_precision=PRECISION)
        if GATED:
            w_up = _weight_tile(w_base, s_base, code_ptr, cols + n_out, col_ok, k0, k_in, stride_wn, stride_wk,
                                stride_sn, stride_sk, NF4, QBLOCK, BLOCK_N, BLOCK_K)
            acc_up = tl.dot(a, w_up.to(a.dtype), acc_up, input_precision=PRECISION)
    if SCALED:
        acc = acc * tl.load(s_base + cols * stride_sn, mask=col_ok, other=1.0)[None, :]
        if GATED:
            acc_up = acc_up * tl.load(s_base + (n_out + cols) * stride_sn, mask=col_ok, other=1.0)[None, :]
    if GATED:
        acc = gelu_tanh(acc) * acc_up
    if ROUTED:
        acc = acc * tl.load(routing_ptr + pairs, mask=real, other=0.0)[:, None]
    tl.store(c_ptr + pairs[:, None] * stride_cm + cols[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=real[:, None] & col_ok[None, :])


def fused_moe(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    weights: torch.Tensor,
    experts: torch.Tensor,
    gate_up_scale: torch.Tensor | None = None,
    down_scale: torch.Tensor | None = None,
    codebook: torch.Tensor | None = None,
    config: dict | None = None,
) -> torch.Tensor:
    """x [T, D]; weights (fp32) and experts [T, K] from the router -> [T, D] in x's dtype. The expert weights:
    gate_up [E, 2I, D] and down [E, D, I] in bf16/fp16/fp32; or e4m3 with per-row scales [E, 2I] and [E, D];
    or NF4 codes (uint8) [E, 2I, D/2] and [E, D, I/2] with absmax [E, 2I, D/64] and [E, D, I/64] and the
    16-entry float32 codebook (rows padded to whole blocks, as engine/weights/quantize.py stores them)."""
    num_tokens, top_k = experts.shape
    hidden = x.shape[1]
    num_experts, double_inter = gate_up.shape[:2]
    inter = double_inter // 2
    nf4 = gate_up.dtype == torch.uint8
    qblock = _check_weights(hidden, gate_up, down, gate_up_scale, down_scale, codebook)
    num_pairs = num_tokens * top_k
    config = {**default_config(num_pairs, num_experts, nf4),
              **(config or tuned_config(x.device, num_experts, hidden, inter, x.dtype, weight_format(gate_up),
                                        num_pairs))}
    block_m, block_n, block_k = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    if nf4 and block_k % qblock:
        raise ValueError(f"BLOCK_K must be a multiple of the NF4 block ({qblock} weights) with NF4 weights, "
                         f"got {block_k}")
    launch = {"num_warps": config["num_warps"], "num_stages": config["num_stages"]}
    sorted_ids, tile_experts, num_padded = align_fused(experts, num_experts, block_m)
    tiles = sorted_ids.numel() // block_m
    x = x.contiguous()
    scaled = gate_up_scale is not None and not nf4
    flags = {"top_k": top_k, "SCALED": scaled, "NF4": nf4, "QBLOCK": qblock, "DENSE": False,
             "PRECISION": "ieee" if x.dtype == torch.float32 else "tf32",
             "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, **launch}
    hidden_pairs = torch.empty(num_pairs, inter, dtype=x.dtype, device=x.device)
    _grouped_gemm[(tiles, triton.cdiv(inter, block_n))](
        x, gate_up, *_scales(gate_up_scale, codebook, x), hidden_pairs, x,
        sorted_ids, tile_experts, num_padded,
        num_pairs, inter, hidden,
        x.stride(0), *gate_up.stride(), *_scale_strides(gate_up_scale), hidden_pairs.stride(0),
        A_BY_TOKEN=True, GATED=True, ROUTED=False, **flags,
    )
    out_pairs = torch.empty(num_pairs, hidden, dtype=x.dtype, device=x.device)
    routing = weights.reshape(-1).to(torch.float32).contiguous()
    _grouped_gemm[(tiles, triton.cdiv(hidden, block_n))](
        hidden_pairs, down, *_scales(down_scale, codebook, x), out_pairs, routing,
        sorted_ids, tile_experts, num_padded,
        num_pairs, hidden, inter,
        hidden_pairs.stride(0), *down.stride(), *_scale_strides(down_scale), out_pairs.stride(0),
        A_BY_TOKEN=False, GATED=False, ROUTED=True, **flags,
    )
    return top_k_sum(out_pairs.view(num_tokens, top_k, hidden), x.dtype)


@triton.jit
def _top_k_sum_kernel(pairs_ptr, out_ptr, hidden: tl.constexpr, top_k: tl.constexpr, BLOCK: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < hidden
    total = tl.zeros((BLOCK,), tl.float32)
    for k in range(top_k):
        total += tl.load(pairs_ptr + (token * top_k + k) * hidden + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + token * hidden + cols, total.to(out_ptr.dtype.element_ty), mask=ok)


def top_k_sum(pairs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[T, K, D] (float32, or the activation dtype) -> their sum over K in float32, cast to dtype, [T, D]: one
    launch where torch takes two (the sum, the cast)."""
    num_tokens, top_k, hidden = pairs.shape
    pairs = pairs.contiguous()
    out = torch.empty(num_tokens, hidden, dtype=dtype, device=pairs.device)
    block = min(1024, triton.next_power_of_2(hidden))
    _top_k_sum_kernel[(num_tokens, triton.cdiv(hidden, block))](pairs, out, hidden=hidden, top_k=top_k, BLOCK=block)
    return out


def _scales(scale: torch.Tensor | None, codebook: torch.Tensor | None, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """scale_ptr and code_ptr (x stands in for an absent one: never read)."""
    return (x if scale is None else scale), (x if codebook is None else codebook)


def _scale_strides(scale: torch.Tensor | None) -> tuple[int, int, int]:
    """(expert, row, block) strides of FP8 scales [E, N] or NF4 absmax [E, N, blocks]."""
    if scale is None:
        return 0, 0, 0
    return scale.stride(0), scale.stride(1), scale.stride(2) if scale.dim() == 3 else 0


def _check_weights(hidden, gate_up, down, gate_up_scale, down_scale, codebook) -> int:
    """Rejects expert weights the kernel cannot read; the weights per scale (NF4_BLOCK for NF4, 1 otherwise)."""
    inter = gate_up.shape[1] // 2
    if gate_up.dtype != torch.uint8:
        if gate_up.shape[2] != hidden or tuple(down.shape[1:]) != (hidden, inter):
            raise ValueError(f"expert weights gate_up {list(gate_up.shape)} and down {list(down.shape)} do not "
                             f"match hidden {hidden}")
        if (gate_up_scale is None) != (down_scale is None):
            raise ValueError("FP8 experts need both scales")
        return 1
    if gate_up_scale is None or down_scale is None or codebook is None or tuple(codebook.shape) != (16,):
        raise ValueError("NF4 expert weights (uint8) need both absmax tensors and the 16-entry codebook")
    if codebook.dtype != torch.float32 or gate_up_scale.dtype != torch.float32 or down_scale.dtype != torch.float32:
        raise ValueError("the NF4 codebook and absmax must be float32")
    block, num_experts = NF4_BLOCK, gate_up.shape[0]
    for name, codes, absmax, rows, width in (("gate_up", gate_up, gate_up_scale, 2 * inter, hidden),
                                             ("down", down, down_scale, hidden, inter)):
        blocks = -(-width // block)
        if tuple(codes.shape) != (num_experts, rows, blocks * block // 2) or \
                tuple(absmax.shape) != (num_experts, rows, blocks):
            raise ValueError(f"NF4 {name}: codes {list(codes.shape)} and absmax {list(absmax.shape)} do not hold "
                             f"{num_experts} x {rows} rows of {width} weights in blocks of {block}")
    return block
