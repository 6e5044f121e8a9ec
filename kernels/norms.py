"""RMSNorm in one launch; q/k's RMSNorm with RoPE in one launch; a layer's output from its two branches in one.

A denoising step of the 26B-A4B runs about 330 RMSNorms: eleven per layer (the block's seven, q, k and v
per head, the router's), the self-conditioning pair and the final one. The reference (engine/layers.py
`RMSNorm`) is eight elementwise ops, each its own kernel over a few megabytes at most: some 2,600 launches
a step, each a few microseconds even replayed from a CUDA graph, against a step that should take about
8 ms. Here each program normalises whole rows in registers: load, sum of squares in float32, scale, the
weight, store in the input's dtype. One launch per norm. The attention's q and k are normed per head and
then rotated (engine/layers.py `apply_rope`: five more kernels, twice a layer); `norm_rope` does both. A
layer ends (x + norm(norm_1(dense) + norm_2(moe))) * layer scalar: `ffn_out` takes the two branches' raw
outputs and does the three norms, two sums and the product in one pass over the rows.

The arithmetic is the reference's in float32 (x * (mean(x^2) + eps)^-1/2 * w, cast back), summed in
another order and with a reciprocal square root where the reference raises to -0.5: float32 results agree
to a few ulps, bf16 ones but for the odd rounding flip. Tested against `reference` on CPU through
TRITON_INTERPRET=1; compiled for sm_90/89/80 by tests/kernels/offline_compile.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Rows per program: enough to amortise loading the weight over a 256-position canvas of 2816-wide rows, few
# enough that a canvas of q/k heads (4,096 rows of 256) still gives every SM work.
ROWS_PER_PROGRAM = 4


def reference_rope(x: torch.Tensor, weight: torch.Tensor | None, eps: float, cos: torch.Tensor,
                   sin: torch.Tensor) -> torch.Tensor:
    """engine/model.py's apply_rope(norm(x), cos, sin), op for op: x [B, T, H, D], cos and sin [B, T, D]."""
    from engine.layers import apply_rope

    return apply_rope(reference(x, weight, eps), cos, sin)


def reference_ffn_out(x, dense, moe, w_dense, w_moe, w_sum, eps: float, scalar) -> torch.Tensor:
    """engine/model.py's Block.finish after its branches, op for op."""
    return (x + reference(reference(dense, w_dense, eps) + reference(moe, w_moe, eps), w_sum, eps)) * scalar


def reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """engine/layers.py's RMSNorm, op for op."""
    h = x.float()
    h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        h = h * weight.float()
    return h.type_as(x)


@triton.jit
def _inverse_rms(x, eps, dim: tl.constexpr):
    """(mean(x^2) + eps)^-1/2 of a float32 row, as every norm here takes it (a reciprocal square root where
    the reference raises to -0.5)."""
    return 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / dim + eps)


@triton.jit
def _rms_norm_kernel(
    x_ptr, w_ptr, out_ptr, num_rows, stride_x, stride_out, eps,
    dim: tl.constexpr, HAS_WEIGHT: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            x = tl.load(x_ptr + row * stride_x + cols, mask=col_ok, other=0.0).to(tl.float32)
            h = x * _inverse_rms(x, eps, dim)
            if HAS_WEIGHT:
                h = h * w
            tl.store(out_ptr + row * stride_out + cols, h.to(out_ptr.dtype.element_ty), mask=col_ok)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """`reference` in one launch: x [..., dim] (rows contiguous in the last dimension), weight [dim] or None."""
    dim = x.shape[-1]
    rows = x.reshape(-1, dim)  # a view for the engine's tensors; a copy only for an unusual layout
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    block = triton.next_power_of_2(dim)
    _rms_norm_kernel[(triton.cdiv(rows.shape[0], ROWS_PER_PROGRAM),)](
        rows, rows if weight is None else weight, out, rows.shape[0], rows.stride(0), out.stride(0), float(eps),
        dim=dim, HAS_WEIGHT=weight is not None, ROWS=ROWS_PER_PROGRAM, BLOCK=block,
        num_warps=8 if block >= 2048 else 4,
    )
    return out.view(x.shape)


@triton.jit
def _norm_rope_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, num_rows, heads, eps,
    dim: tl.constexpr, HAS_WEIGHT: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Rows of x [B * T * H, D] (contiguous), cos and sin [B * T, D]. The reference rotates the normed head in
    the activation dtype (cat(-x2, x1)), multiplies and adds there: each step is rounded the same way here."""
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    half = dim // 2
    partner = tl.where(cols < half, cols + half, cols - half)  # rotate_half's source column
    sign = tl.where(cols < half, -1.0, 1.0)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        w_partner = tl.load(w_ptr + partner, mask=col_ok, other=0.0).to(tl.float32)
    dtype = out_ptr.dtype.element_ty
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            x = tl.load(x_ptr + row * dim + cols, mask=col_ok, other=0.0).to(tl.float32)
            x_partner = tl.load(x_ptr + row * dim + partner, mask=col_ok, other=0.0).to(tl.float32)
            scale = _inverse_rms(x, eps, dim)
            normed, normed_partner = x * scale, x_partner * scale
            if HAS_WEIGHT:
                normed, normed_partner = normed * w, normed_partner * w_partner
            normed = normed.to(dtype).to(tl.float32)
            rotated = sign * normed_partner.to(dtype).to(tl.float32)
            position = row // heads
            cos = tl.load(cos_ptr + position * dim + cols, mask=col_ok, other=0.0).to(tl.float32)
            sin = tl.load(sin_ptr + position * dim + cols, mask=col_ok, other=0.0).to(tl.float32)
            out = (normed * cos).to(dtype).to(tl.float32) + (rotated * sin).to(dtype).to(tl.float32)
            tl.store(out_ptr + row * dim + cols, out.to(dtype), mask=col_ok)


def norm_rope(x: torch.Tensor, weight: torch.Tensor | None, eps: float, cos: torch.Tensor,
              sin: torch.Tensor) -> torch.Tensor:
    """`reference_rope` in one launch: x [B, T, H, D], cos and sin [B, T, D] in x's dtype."""
    batch, length, heads, dim = x.shape
    if cos.shape != (batch, length, dim) or sin.shape != cos.shape:
        raise ValueError(f"norm_rope: cos {tuple(cos.shape)} and sin {tuple(sin.shape)} must be [{batch}, {length}, "
                         f"{dim}] for x {tuple(x.shape)}")
    x, cos, sin = x.contiguous(), cos.contiguous(), sin.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    num_rows = batch * length * heads
    block = triton.next_power_of_2(dim)
    _norm_rope_kernel[(triton.cdiv(num_rows, ROWS_PER_PROGRAM),)](
        x, x if weight is None else weight, cos, sin, out, num_rows, heads, float(eps),
        dim=dim, HAS_WEIGHT=weight is not None, ROWS=ROWS_PER_PROGRAM, BLOCK=block,
    )
    return out


@triton.jit
def _row_norm(x, w, eps, dim: tl.constexpr, dtype: tl.constexpr):
    """One row's RMSNorm in float32, rounded to the activation dtype (and back, for the next op)."""
    normed = x * _inverse_rms(x, eps, dim) * w
    return normed.to(dtype).to(tl.float32)


@triton.jit
def _ffn_out_kernel(
    x_ptr, dense_ptr, moe_ptr, w_dense_ptr, w_moe_ptr, w_sum_ptr, scalar_ptr, out_ptr, num_rows, eps,
    dim: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Rows [N, D] (contiguous): every reference op rounds to the activation dtype, and so does each here."""
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    dtype = out_ptr.dtype.element_ty
    w_dense = tl.load(w_dense_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    w_moe = tl.load(w_moe_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    w_sum = tl.load(w_sum_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    scalar = tl.load(scalar_ptr).to(tl.float32)
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            offsets = row * dim + cols
            dense = tl.load(dense_ptr + offsets, mask=col_ok, other=0.0).to(tl.float32)
            moe = tl.load(moe_ptr + offsets, mask=col_ok, other=0.0).to(tl.float32)
            both = (_row_norm(dense, w_dense, eps, dim, dtype) + _row_norm(moe, w_moe, eps, dim, dtype))
            both = both.to(dtype).to(tl.float32)
            x = tl.load(x_ptr + offsets, mask=col_ok, other=0.0).to(tl.float32)
            residual = (x + _row_norm(both, w_sum, eps, dim, dtype)).to(dtype).to(tl.float32)
            tl.store(out_ptr + offsets, (residual * scalar).to(dtype), mask=col_ok)


def ffn_out(x, dense, moe, w_dense, w_moe, w_sum, eps: float, scalar: torch.Tensor) -> torch.Tensor:
    """`reference_ffn_out` in one launch: x, dense, moe [..., D] in one dtype, the norms' weights [D], the
    layer scalar [1]."""
    dim = x.shape[-1]
    x, dense, moe = x.contiguous(), dense.contiguous(), moe.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    num_rows = x.numel() // dim
    block = triton.next_power_of_2(dim)
    _ffn_out_kernel[(triton.cdiv(num_rows, ROWS_PER_PROGRAM),)](
        x, dense, moe, w_dense, w_moe, w_sum, scalar, out, num_rows, float(eps),
        dim=dim, ROWS=ROWS_PER_PROGRAM, BLOCK=block, num_warps=8 if block >= 2048 else 4,
    )
    return out
