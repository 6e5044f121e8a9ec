"""Both RoPE tables of a step in one launch: cos and sin of positions x frequencies for the sliding and the
global layers.

The reference (engine/model/layers.py `rope_cos_sin`, twice a step) takes the product in float32, duplicates it
across the two halves, takes its cosine and sine and casts each to the activation dtype: a dozen small
launches a denoising step for four [B, L, head_dim] tables. Here one program per position writes all four.
The product is the reference's float32 one; the cosine and sine are the device's float32 ones (the
interpreter's: numpy's), which may differ from torch's in the last bit before the cast. Tested against
`rope_cos_sin` on CPU through TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _table(position, inv_freq_ptr, cos_ptr, sin_ptr, row, dim: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    ok = cols < dim
    freq = position * tl.load(inv_freq_ptr + cols % (dim // 2), mask=ok, other=0.0)  # cat(freqs, freqs)
    tl.store(cos_ptr + row * dim + cols, tl.cos(freq).to(cos_ptr.dtype.element_ty), mask=ok)
    tl.store(sin_ptr + row * dim + cols, tl.sin(freq).to(sin_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _rope_kernel(
    positions_ptr, local_freq_ptr, global_freq_ptr, local_cos_ptr, local_sin_ptr, global_cos_ptr, global_sin_ptr,
    local_dim: tl.constexpr, global_dim: tl.constexpr, LOCAL_BLOCK: tl.constexpr, GLOBAL_BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    position = tl.load(positions_ptr + row).to(tl.float32)
    _table(position, local_freq_ptr, local_cos_ptr, local_sin_ptr, row, local_dim, LOCAL_BLOCK)
    _table(position, global_freq_ptr, global_cos_ptr, global_sin_ptr, row, global_dim, GLOBAL_BLOCK)


def rope_tables(positions: torch.Tensor, local_inv_freq: torch.Tensor, global_inv_freq: torch.Tensor,
                dtype: torch.dtype) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """positions [B, T] -> ((cos, sin) [B, T, 2 x local freqs], (cos, sin) [B, T, 2 x global freqs]) in dtype,
    rope_cos_sin's for each frequency set (float32 inverse frequencies)."""
    tables = []
    for inv_freq in (local_inv_freq, global_inv_freq):
        if inv_freq.dtype != torch.float32:
            raise ValueError(f"rope_tables: inverse frequencies must be float32, not {inv_freq.dtype}")
        dim = 2 * inv_freq.shape[0]
        tables.append(tuple(torch.empty(*positions.shape, dim, dtype=dtype, device=positions.device) for _ in range(2)))
    (local_cos, local_sin), (global_cos, global_sin) = tables
    local_dim, global_dim = local_cos.shape[-1], global_cos.shape[-1]
    _rope_kernel[(positions.numel(),)](
        positions.contiguous(), local_inv_freq.contiguous(), global_inv_freq.contiguous(),
        local_cos, local_sin, global_cos, global_sin,
        local_dim=local_dim, global_dim=global_dim, LOCAL_BLOCK=triton.next_power_of_2(local_dim),
        GLOBAL_BLOCK=triton.next_power_of_2(global_dim),
    )
    return (local_cos, local_sin), (global_cos, global_sin)
