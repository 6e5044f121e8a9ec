"""The model's math as plain functions on tensors: RMSNorm, the tanh GELU, RoPE and the experts' grouped GEMM.

The reference ops (engine/model/ops.py) and the layers (engine/model/layers.py) are built from these. Every op
mirrors transformers' DiffusionGemma in order and dtype (fp32 norms cast back), so float32 results agree with
the reference to rounding and bf16 ones bit for bit wherever the underlying kernels agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """x [..., D] normed over D in fp32, times weight [D] when there is one, cast back to x's dtype."""
    h = x.float()
    # torch.pow(., -0.5) rather than rsqrt: the reference does this, and rsqrt differs in the last bit
    h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        h = h * weight.float()
    return h.type_as(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def rope_inv_freq(head_dim: int, theta: float, rope_type: str, partial_rotary_factor: float) -> torch.Tensor:
    """Inverse frequencies, [head_dim // 2], fp32.

    "proportional" (global layers) rotates only the first partial_rotary_factor of each half with exponents
    over the *full* head dim and pads with zero frequencies (cos 1, sin 0), so the encoding stays head_dim wide.
    """
    if rope_type == "proportional":
        num_rotated = int(partial_rotary_factor * head_dim // 2)
        exponents = torch.arange(0, 2 * num_rotated, 2, dtype=torch.int64).float() / head_dim
        rotated = 1.0 / (theta**exponents)
        return torch.cat((rotated, torch.zeros(head_dim // 2 - num_rotated, dtype=torch.float32)))
    dim = int(head_dim * partial_rotary_factor)
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """positions [B, T] -> cos, sin [B, T, head_dim] in the activation dtype."""
    freqs = positions[..., None].float() * inv_freq.float()  # [B, T, head_dim // 2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, D]; cos, sin [B, T, D]."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def grouped_linear(rows: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """rows [N, In] grouped by expert (group e ends at offsets[e]), weight [E, Out, In] -> [N, Out]."""
    if _grouped_mm_supported(rows, weight):
        return F.grouped_mm(rows, weight.transpose(-2, -1), offs=offsets)
    # Loop fallback: one host sync for the group bounds. The fused MoE kernel replaces both paths.
    out = rows.new_empty(rows.shape[0], weight.shape[1])
    start = 0
    for expert, end in enumerate(offsets.tolist()):
        if end > start:
            torch.mm(rows[start:end], weight[expert].t(), out=out[start:end])
        start = end
    return out


def _grouped_mm_supported(rows: torch.Tensor, weight: torch.Tensor) -> bool:
    if not hasattr(F, "grouped_mm") or rows.dtype != weight.dtype:
        return False
    # the kernel wants 16-byte aligned strides
    if any((dim * rows.element_size()) % 16 for dim in (rows.shape[1], weight.shape[1], weight.shape[2])):
        return False
    if weight.device.type == "cuda":
        return rows.dtype == torch.bfloat16 and torch.cuda.get_device_capability(weight.device) >= (8, 0)
    return weight.device.type == "cpu"
