"""RMSNorm in one launch; q/k's RMSNorm with RoPE in one launch, or q, k and v's together from their stacked
projection; the residual after attention with the norms it feeds in one; a layer's output from its two
branches in one.

A denoising step of the 26B-A4B runs about 330 RMSNorms: eleven per layer (the block's seven, q, k and v
per head, the router's), the self-conditioning pair and the final one. The reference (engine/model/layers.py
`RMSNorm`) is eight elementwise ops, each its own kernel over a few megabytes at most: some 2,600 launches
a step, each a few microseconds even replayed from a CUDA graph, against a step that should take about
8 ms. Here each program normalises whole rows in registers: load, sum of squares in float32, scale, the
weight, store in the input's dtype. One launch per norm. The attention's q and k are normed per head and
then rotated (engine/model/layers.py `apply_rope`: five more kernels, twice a layer); `norm_rope` does both, and
`qkv_norm_rope` does q's, k's and v's at once from the one GEMM engine/model/fused.py stacks them into. After the
attention, `attn_residual` adds its normed output to the residual and norms the sum twice, for the dense MLP
and for the experts: four launches in one. A layer ends (x + norm(norm_1(dense) + norm_2(moe))) * layer
scalar: `ffn_out` takes the two branches' raw outputs and does the three norms, two sums and the product in
one pass over the rows, and the next layer's input norm of the result (after the last layer, the final norm).

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
    """engine/model/network.py's apply_rope(norm(x), cos, sin), op for op: x [B, T, H, D], cos and sin [B, T, D]."""
    return apply_rope(reference(x, weight, eps), cos, sin)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """engine/model/layers.py's apply_rope, op for op: x [B, T, H, D]; cos, sin [B, T, D]."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def reference_ffn_out(x, dense, moe, w_dense, w_moe, w_sum, eps: float, scalar, w_next=None):
    """engine/model/network.py's Block.finish after its branches, op for op (and with w_next, the next norm after it)."""
    out = (x + reference(reference(dense, w_dense, eps) + reference(moe, w_moe, eps), w_sum, eps)) * scalar
    return out if w_next is None else (out, reference(out, w_next, eps))


def reference_qkv(proj, q_weight, k_weight, eps: float, cos, sin, q_heads: int, kv_heads: int, dim: int):
    """engine/model/network.py's q, k and v of an attention layer, op for op, from its projections' outputs side by side
    in proj [B, T, width] (v is k's raw output when there is no v projection)."""
    q_width, kv_width = q_heads * dim, kv_heads * dim
    q = proj[..., :q_width].unflatten(-1, (q_heads, dim))
    k = proj[..., q_width : q_width + kv_width].unflatten(-1, (kv_heads, dim))
    v = proj[..., q_width + kv_width :].unflatten(-1, (kv_heads, dim)) if proj.shape[-1] > q_width + kv_width else k
    rotated = (reference_rope(q, q_weight, eps, cos, sin), reference_rope(k, k_weight, eps, cos, sin))
    return *rotated, reference(v, None, eps)


def reference_attn_residual(x, attn, w_post, w_dense, w_moe, eps: float):
    """engine/model/network.py's Block.finish up to its branches' inputs, op for op: the residual after attention and
    its two pre-feed-forward norms."""
    residual = x + reference(attn, w_post, eps)
    return residual, reference(residual, w_dense, eps), reference(residual, w_moe, eps)


def reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """engine/model/layers.py's RMSNorm, op for op."""
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
def _row(ptr, cols, col_ok):
    """A row (or a norm's weight) at ptr, in float32, zeros past the row's end."""
    return tl.load(ptr + cols, mask=col_ok, other=0.0).to(tl.float32)


@triton.jit
def _rms_norm_kernel(
    x_ptr, w_ptr, out_ptr, num_rows, stride_x, stride_out, eps,
    dim: tl.constexpr, HAS_WEIGHT: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    if HAS_WEIGHT:
        w = _row(w_ptr, cols, col_ok)
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
def _norm_rope_row(
    x_row, w_ptr, cos_row, sin_row, out_row, eps,
    dim: tl.constexpr, HAS_WEIGHT: tl.constexpr, ROPE: tl.constexpr, BLOCK: tl.constexpr,
):
    """One head's RMSNorm, then (ROPE) its rotation. The reference rotates the normed head in the activation
    dtype (cat(-x2, x1)), multiplies and adds there: each step is rounded the same way here."""
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    dtype = out_row.dtype.element_ty
    x = _row(x_row, cols, col_ok)
    scale = _inverse_rms(x, eps, dim)
    normed = x * scale
    if HAS_WEIGHT:
        normed = normed * _row(w_ptr, cols, col_ok)
    if ROPE:
        half = dim // 2
        partner = tl.where(cols < half, cols + half, cols - half)  # rotate_half's source column
        sign = tl.where(cols < half, -1.0, 1.0)
        normed_partner = tl.load(x_row + partner, mask=col_ok, other=0.0).to(tl.float32) * scale
        if HAS_WEIGHT:
            normed_partner = normed_partner * tl.load(w_ptr + partner, mask=col_ok, other=0.0).to(tl.float32)
        rotated = sign * normed_partner.to(dtype).to(tl.float32)
        cos = _row(cos_row, cols, col_ok)
        sin = _row(sin_row, cols, col_ok)
        normed = (normed.to(dtype).to(tl.float32) * cos).to(dtype).to(tl.float32) + \
            (rotated * sin).to(dtype).to(tl.float32)
    tl.store(out_row + cols, normed.to(dtype), mask=col_ok)


@triton.jit
def _norm_rope_kernel(
    x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, num_rows, heads, eps,
    dim: tl.constexpr, HAS_WEIGHT: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Rows of x [B * T * H, D] (contiguous), cos and sin [B * T, D]."""
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            position = row // heads
            _norm_rope_row(x_ptr + row * dim, w_ptr, cos_ptr + position * dim, sin_ptr + position * dim,
                           out_ptr + row * dim, eps, dim, HAS_WEIGHT, True, BLOCK)


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
def _qkv_kernel(
    proj_ptr, wq_ptr, wk_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, v_ptr, num_rows, eps,
    q_heads: tl.constexpr, kv_heads: tl.constexpr, HAS_V: tl.constexpr, dim: tl.constexpr, ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """A row per (position, output head), q's heads then k's then v's, read from the stacked projection
    [positions, (q_heads + kv_heads, + kv_heads again with HAS_V) x dim]. Without a v projection (global
    layers) v is k's raw output, normed without a scale and not rotated."""
    heads = q_heads + 2 * kv_heads
    width = (q_heads + (2 if HAS_V else 1) * kv_heads) * dim
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            position = row // heads
            head = row % heads
            source = proj_ptr + position * width
            cos_row, sin_row = cos_ptr + position * dim, sin_ptr + position * dim
            if head < q_heads:
                _norm_rope_row(source + head * dim, wq_ptr, cos_row, sin_row, q_ptr + (position * q_heads + head) * dim,
                               eps, dim, True, True, BLOCK)
            elif head < q_heads + kv_heads:
                kv = head - q_heads
                _norm_rope_row(source + head * dim, wk_ptr, cos_row, sin_row, k_ptr + (position * kv_heads + kv) * dim,
                               eps, dim, True, True, BLOCK)
            else:
                kv = head - q_heads - kv_heads
                column = (head if HAS_V else q_heads + kv) * dim
                _norm_rope_row(source + column, wq_ptr, cos_row, sin_row, v_ptr + (position * kv_heads + kv) * dim,
                               eps, dim, False, False, BLOCK)


def qkv_norm_rope(proj: torch.Tensor, q_weight: torch.Tensor, k_weight: torch.Tensor, eps: float, cos: torch.Tensor,
                  sin: torch.Tensor, q_heads: int, kv_heads: int, dim: int) -> tuple[torch.Tensor, ...]:
    """`reference_qkv` in one launch: q, k, v [B, T, heads, dim] from q, k and (when it is 3 blocks wide) v
    stacked in proj [B, T, width] (engine/model/fused.py), cos and sin [B, T, dim] in proj's dtype."""
    batch, length, width = proj.shape
    has_v = width == (q_heads + 2 * kv_heads) * dim
    if not has_v and width != (q_heads + kv_heads) * dim:
        raise ValueError(f"qkv_norm_rope: a projection {width} wide is not {q_heads} q heads and {kv_heads} k (and v) "
                         f"heads of {dim}")
    proj, cos, sin = proj.contiguous(), cos.contiguous(), sin.contiguous()
    q = torch.empty(batch, length, q_heads, dim, dtype=proj.dtype, device=proj.device)
    k = torch.empty(batch, length, kv_heads, dim, dtype=proj.dtype, device=proj.device)
    v = torch.empty_like(k)
    num_rows = batch * length * (q_heads + 2 * kv_heads)
    _qkv_kernel[(triton.cdiv(num_rows, ROWS_PER_PROGRAM),)](
        proj, q_weight, k_weight, cos, sin, q, k, v, num_rows, float(eps),
        q_heads=q_heads, kv_heads=kv_heads, HAS_V=has_v, dim=dim, ROWS=ROWS_PER_PROGRAM,
        BLOCK=triton.next_power_of_2(dim),
    )
    return q, k, v


@triton.jit
def _row_norm(x, w, eps, dim: tl.constexpr, dtype: tl.constexpr):
    """One row's RMSNorm in float32, rounded to the activation dtype (and back, for the next op)."""
    normed = x * _inverse_rms(x, eps, dim) * w
    return normed.to(dtype).to(tl.float32)


@triton.jit
def _ffn_out_kernel(
    x_ptr, dense_ptr, moe_ptr, w_dense_ptr, w_moe_ptr, w_sum_ptr, scalar_ptr, w_next_ptr, out_ptr, next_ptr,
    num_rows, eps,
    dim: tl.constexpr, NEXT: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Rows [N, D] (contiguous): every reference op rounds to the activation dtype, and so does each here.
    NEXT: also the next norm of the layer's output (the next layer's input norm, or the final one)."""
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    dtype = out_ptr.dtype.element_ty
    w_dense = _row(w_dense_ptr, cols, col_ok)
    w_moe = _row(w_moe_ptr, cols, col_ok)
    w_sum = _row(w_sum_ptr, cols, col_ok)
    scalar = tl.load(scalar_ptr).to(tl.float32)
    if NEXT:
        w_next = _row(w_next_ptr, cols, col_ok)
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            offsets = row * dim + cols
            dense = _row(dense_ptr + row * dim, cols, col_ok)
            moe = _row(moe_ptr + row * dim, cols, col_ok)
            both = (_row_norm(dense, w_dense, eps, dim, dtype) + _row_norm(moe, w_moe, eps, dim, dtype))
            both = both.to(dtype).to(tl.float32)
            x = _row(x_ptr + row * dim, cols, col_ok)
            residual = (x + _row_norm(both, w_sum, eps, dim, dtype)).to(dtype).to(tl.float32)
            out = (residual * scalar).to(dtype)
            tl.store(out_ptr + offsets, out, mask=col_ok)
            if NEXT:
                tl.store(next_ptr + offsets, _row_norm(out.to(tl.float32), w_next, eps, dim, dtype).to(dtype),
                         mask=col_ok)


def ffn_out(x, dense, moe, w_dense, w_moe, w_sum, eps: float, scalar: torch.Tensor,
            w_next: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`reference_ffn_out` in one launch: x, dense, moe [..., D] in one dtype, the norms' weights [D], the
    layer scalar [1]. With w_next [D], also the output's norm by it (the next layer's input norm, or the
    final norm): (output, its norm)."""
    dim = x.shape[-1]
    x, dense, moe = x.contiguous(), dense.contiguous(), moe.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    normed = torch.empty(x.shape, dtype=x.dtype, device=x.device) if w_next is not None else out
    num_rows = x.numel() // dim
    block = triton.next_power_of_2(dim)
    _ffn_out_kernel[(triton.cdiv(num_rows, ROWS_PER_PROGRAM),)](
        x, dense, moe, w_dense, w_moe, w_sum, scalar, w_sum if w_next is None else w_next, out, normed,
        num_rows, float(eps),
        dim=dim, NEXT=w_next is not None, ROWS=ROWS_PER_PROGRAM, BLOCK=block, num_warps=8 if block >= 2048 else 4,
    )
    return out if w_next is None else (out, normed)


@triton.jit
def _attn_residual_kernel(
    x_ptr, attn_ptr, w_post_ptr, w_dense_ptr, w_moe_ptr, out_ptr, dense_ptr, moe_ptr, num_rows, eps,
    dim: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Rows [N, D] (contiguous), each value rounded to the activation dtype where the reference's is."""
    cols = tl.arange(0, BLOCK)
    col_ok = cols < dim
    dtype = out_ptr.dtype.element_ty
    w_post = _row(w_post_ptr, cols, col_ok)
    w_dense = _row(w_dense_ptr, cols, col_ok)
    w_moe = _row(w_moe_ptr, cols, col_ok)
    for i in range(ROWS):
        row = (tl.program_id(0) * ROWS + i).to(tl.int64)
        if row < num_rows:
            offsets = row * dim + cols
            x = _row(x_ptr + row * dim, cols, col_ok)
            attn = _row(attn_ptr + row * dim, cols, col_ok)
            residual = (x + _row_norm(attn, w_post, eps, dim, dtype)).to(dtype).to(tl.float32)
            tl.store(out_ptr + offsets, residual.to(dtype), mask=col_ok)
            tl.store(dense_ptr + offsets, _row_norm(residual, w_dense, eps, dim, dtype).to(dtype), mask=col_ok)
            tl.store(moe_ptr + offsets, _row_norm(residual, w_moe, eps, dim, dtype).to(dtype), mask=col_ok)


def attn_residual(x, attn, w_post, w_dense, w_moe, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`reference_attn_residual` in one launch: x and the attention output [..., D] in one dtype, the norms'
    weights [D]."""
    dim = x.shape[-1]
    x, attn = x.contiguous(), attn.contiguous()
    out, dense, moe = (torch.empty(x.shape, dtype=x.dtype, device=x.device) for _ in range(3))
    num_rows = x.numel() // dim
    block = triton.next_power_of_2(dim)
    _attn_residual_kernel[(triton.cdiv(num_rows, ROWS_PER_PROGRAM),)](
        x, attn, w_post, w_dense, w_moe, out, dense, moe, num_rows, float(eps),
        dim=dim, ROWS=ROWS_PER_PROGRAM, BLOCK=block, num_warps=8 if block >= 2048 else 4,
    )
    return out, dense, moe
