"""Fused mixture-of-experts for the canvas: route-sorted grouped GEMMs with the GELU gate fused in.

The engine's reference path (engine/layers.py `Experts`) sorts the token-expert pairs by expert and runs
one grouped GEMM per projection, with the gate activation, the product with `up` and the routing weights as
separate elementwise passes over [pairs, I] and [pairs, D] tensors, and with FP8 weights (engine/quantize.py)
a dequantized bf16 copy of every expert's weights per step. Here, as in vLLM's fused_moe:

1. `align`: the pairs sorted by expert, each expert's group padded to a multiple of the tile height
   BLOCK_M (padding rows point past the last pair), and the expert of every tile. Torch ops only, sized by
   a static bound (pairs + experts x (BLOCK_M - 1)), so nothing waits on the host and a CUDA graph holds it.
2. One launch for gate/up: each program owns BLOCK_M pairs of one expert and BLOCK_N columns of the
   intermediate, accumulates the gate and the up product side by side in fp32, and stores only
   gelu_tanh(gate) * up, [pairs, I].
3. One launch for down: [pairs, I] x down[e]^T, times the pair's routing weight, stored per pair; the sum
   over the top-k pairs of a token is done in fp32 in torch, in the reference's order.

FP8 weights (e4m3 with a float32 scale per output row) are read as stored, one byte per weight, upcast in
registers, and the scale multiplies the fp32 accumulator: (x W^T) * s = x (W s)^T exactly in real
arithmetic, so only the rounding order differs from the dequantize-then-multiply reference.

Tested against the reference on CPU through TRITON_INTERPRET=1 (float32 and float16; the interpreter's bf16
dot is broken in Triton 3.6), and on a GPU in bf16 by bench/kernels.py.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import triton
import triton.language as tl

TUNED = Path(__file__).parent / "configs" / "moe.json"

# Launch configuration when kernels/configs/moe.json has none for this device and shape: small row tiles,
# as a canvas step gives each expert a few to a few hundred pairs.
DEFAULT_CONFIG = {"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3}


def config_key(num_experts: int, hidden: int, inter: int, dtype: torch.dtype, weight_dtype: torch.dtype) -> str:
    """How kernels/configs/moe.json names a shape: experts, hidden, intermediate, activation and weight dtypes."""
    return f"E={num_experts},D={hidden},I={inter},{str(dtype).removeprefix('torch.')},{str(weight_dtype).removeprefix('torch.')}"


@functools.cache
def _tuned() -> dict:
    return json.loads(TUNED.read_text()) if TUNED.exists() else {}


def tuned_config(device: torch.device, num_experts: int, hidden: int, inter: int, dtype: torch.dtype,
                 weight_dtype: torch.dtype, num_pairs: int) -> dict:
    """The stored launch configuration for this device and shape at the smallest tuned pair count that is
    at least `num_pairs` (the largest otherwise); {} when none is stored (DEFAULT_CONFIG then).

    moe.json: {device name: {config_key: {pair count: config}}}, written by `bench/kernels.py --tune`."""
    if device.type != "cuda":
        return {}
    key = config_key(num_experts, hidden, inter, dtype, weight_dtype)
    return lookup(_tuned(), torch.cuda.get_device_name(device), key, num_pairs)


def lookup(table: dict, device_name: str, key: str, num_pairs: int) -> dict:
    by_pairs = table.get(device_name, {}).get(key, {})
    if not by_pairs:
        return {}
    counts = sorted(int(count) for count in by_pairs)
    chosen = next((count for count in counts if count >= num_pairs), counts[-1])
    return by_pairs[str(chosen)]


def align(experts: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """experts [T, K] -> (sorted pair ids [P] int32 with padding = T*K, the expert of each tile [P / block_m]
    int32 (num_experts past the last used tile), the padded pair count [1] int32); P is a static bound."""
    flat = experts.reshape(-1)
    num_pairs = flat.numel()
    bound = num_pairs + num_experts * (block_m - 1)
    bound = (bound + block_m - 1) // block_m * block_m
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


@triton.jit
def _grouped_gemm(
    a_ptr, w_ptr, scale_ptr, c_ptr, routing_ptr,
    sorted_ids_ptr, tile_experts_ptr, num_padded_ptr,
    num_pairs,
    n_out: tl.constexpr, k_in: tl.constexpr,  # model dimensions: one compilation per projection shape
    stride_am, stride_we, stride_wn, stride_wk, stride_se, stride_cm,
    top_k: tl.constexpr,
    A_BY_TOKEN: tl.constexpr,  # rows of A are tokens (pair // top_k) rather than pairs
    GATED: tl.constexpr,  # W holds [gate; up] (2 * n_out rows): store gelu_tanh(gate) * up
    SCALED: tl.constexpr,  # per-row weight scales (FP8 weights)
    ROUTED: tl.constexpr,  # multiply by the pair's routing weight
    PRECISION: tl.constexpr,  # "ieee" for float32 inputs (no TF32 rounding), the default "tf32" otherwise
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
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
    for k0 in range(0, k_in, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < k_in
        a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :], mask=real[:, None] & k_ok[None, :], other=0.0)
        w_mask = k_ok[:, None] & col_ok[None, :]
        w = tl.load(w_base + cols[None, :] * stride_wn + ks[:, None] * stride_wk, mask=w_mask, other=0.0)
        acc = tl.dot(a, w.to(a.dtype), acc, input_precision=PRECISION)
        if GATED:
            w_up = tl.load(w_base + (cols[None, :] + n_out) * stride_wn + ks[:, None] * stride_wk, mask=w_mask,
                           other=0.0)
            acc_up = tl.dot(a, w_up.to(a.dtype), acc_up, input_precision=PRECISION)
    if SCALED:
        acc = acc * tl.load(scale_ptr + expert * stride_se + cols, mask=col_ok, other=1.0)[None, :]
        if GATED:
            acc_up = acc_up * tl.load(scale_ptr + expert * stride_se + n_out + cols, mask=col_ok, other=1.0)[None, :]
    if GATED:  # gelu_tanh(gate) * up, tanh(y) written 2 sigmoid(2y) - 1: tl.sigmoid exists on every backend
        inner = 0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)
        acc = 0.5 * acc * (2.0 * tl.sigmoid(2.0 * inner)) * acc_up
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
    config: dict | None = None,
) -> torch.Tensor:
    """x [T, D]; gate_up [E, 2I, D] and down [E, D, I] (bf16/fp16/fp32, or e4m3 with scales [E, 2I] and
    [E, D]); weights (fp32) and experts [T, K] from the router -> [T, D] in x's dtype."""
    num_tokens, top_k = experts.shape
    num_experts, double_inter, hidden = gate_up.shape
    config = {**DEFAULT_CONFIG, **(config or tuned_config(x.device, num_experts, hidden, double_inter // 2, x.dtype,
                                                          gate_up.dtype, num_tokens * top_k))}
    block_m, block_n, block_k = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    launch = {"num_warps": config["num_warps"], "num_stages": config["num_stages"]}
    inter = double_inter // 2
    num_pairs = num_tokens * top_k
    sorted_ids, tile_experts, num_padded = align(experts, num_experts, block_m)
    tiles = sorted_ids.numel() // block_m
    x = x.contiguous()
    scaled = gate_up_scale is not None
    precision = "ieee" if x.dtype == torch.float32 else "tf32"
    hidden_pairs = torch.empty(num_pairs, inter, dtype=x.dtype, device=x.device)
    _grouped_gemm[(tiles, triton.cdiv(inter, block_n))](
        x, gate_up, gate_up_scale if scaled else x, hidden_pairs, x,
        sorted_ids, tile_experts, num_padded,
        num_pairs, inter, hidden,
        x.stride(0), gate_up.stride(0), gate_up.stride(1), gate_up.stride(2),
        gate_up_scale.stride(0) if scaled else 0, hidden_pairs.stride(0),
        top_k=top_k, A_BY_TOKEN=True, GATED=True, SCALED=scaled, ROUTED=False, PRECISION=precision,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, **launch,
    )
    out_pairs = torch.empty(num_pairs, hidden, dtype=torch.float32, device=x.device)
    routing = weights.reshape(-1).to(torch.float32).contiguous()
    _grouped_gemm[(tiles, triton.cdiv(hidden, block_n))](
        hidden_pairs, down, down_scale if scaled else x, out_pairs, routing,
        sorted_ids, tile_experts, num_padded,
        num_pairs, hidden, inter,
        hidden_pairs.stride(0), down.stride(0), down.stride(1), down.stride(2),
        down_scale.stride(0) if scaled else 0, out_pairs.stride(0),
        top_k=top_k, A_BY_TOKEN=False, GATED=False, SCALED=scaled, ROUTED=True, PRECISION=precision,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, **launch,
    )
    return out_pairs.view(num_tokens, top_k, hidden).sum(dim=1).to(x.dtype)
