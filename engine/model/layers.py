"""Model math building blocks: RMSNorm, RoPE, the gated MLP, the MoE router and the grouped experts.

Every op mirrors transformers' DiffusionGemma in order and dtype (fp32 norms cast back, fp32 router softmax,
fp32 routing weights), so float32 results agree with the reference to rounding and bf16 ones bit for bit
wherever the underlying kernels agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    fused = None  # kernels.norms.rms_norm once engine.runtime.ops.enable() switched the kernels on

    def __init__(self, dim: int, eps: float, with_scale: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if with_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x, self.weight, self.eps)
        h = x.float()
        # torch.pow(., -0.5) rather than rsqrt: the reference does this, and rsqrt differs in the last bit
        h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + self.eps, -0.5)
        if self.weight is not None:
            h = h * self.weight.float()
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


class GatedMLP(nn.Module):
    fused_gated = None  # kernels.linear.gelu_gated (on gate_up) once engine.runtime.ops.enable() switched the kernels on
    gate_up = None  # engine/model/fused.py: gate_proj and up_proj as one projection

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_gated is not None and self.gate_up is not None:  # one GEMM, the gate fused into it or after it
            return self.down_proj(self.fused_gated(x, self.gate_up))
        return self.down_proj(gelu_tanh(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    """Scale-free RMSNorm x learned scale x hidden^-0.5 -> logits -> fp32 softmax -> top-k -> renormalise -> x
    per-expert scale."""

    fused = None  # kernels.router.route once engine.runtime.ops.enable() switched the kernels on

    def __init__(self, hidden_size: int, num_experts: int, top_k: int, eps: float):
        super().__init__()
        self.top_k = top_k
        self.root_size = hidden_size**-0.5
        self.norm = RMSNorm(hidden_size, eps, with_scale=False)
        self.proj = nn.Linear(hidden_size, num_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(hidden_size))
        self.per_expert_scale = nn.Parameter(torch.ones(num_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [T, D] -> weights [T, K] fp32, expert ids [T, K]."""
        if self.fused is not None:
            return self.fused(x, self.norm.eps, self.scale, self.root_size, self.proj.weight, self.per_expert_scale,
                              self.top_k)
        h = self.norm(x) * self.scale * self.root_size
        probs = F.softmax(self.proj(h), dim=-1, dtype=torch.float32)  # [T, E]
        weights, experts = torch.topk(probs, k=self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights * self.per_expert_scale[experts], experts


class Experts(nn.Module):
    """Expert weights as 3D tensors: gate_up [E, 2I, D] (gate rows first), down [E, D, I]."""

    fused = None  # kernels.moe.fused_moe once engine.runtime.ops.enable() switched the fused kernel on

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * intermediate_size, hidden_size))
        self.down_proj = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """x [T, D], weights/experts [T, K] -> [T, D].

        Token-expert pairs are sorted by expert and run as one grouped GEMM per projection (no host sync, so
        it can sit inside a CUDA graph). Weighted outputs are summed over k in fp32, then cast, as the
        reference's default ("grouped_mm") experts path does.
        """
        if self.fused is not None:
            gate_up_proj, down_proj, *scales = self.stored_weights()
            return self.fused(x, gate_up_proj, down_proj, weights, experts, *scales)
        num_tokens, top_k = experts.shape
        gate_up_proj, down_proj = self.weights(x.dtype)
        num_experts = gate_up_proj.shape[0]
        flat_experts = experts.reshape(-1)  # [T*K]
        sorted_experts, order = torch.sort(flat_experts)
        rows = x[order // top_k]  # [T*K, D], grouped by expert
        bounds = torch.arange(1, num_experts + 1, device=x.device, dtype=sorted_experts.dtype)
        offsets = torch.searchsorted(sorted_experts, bounds, right=False).to(torch.int32)  # [E] group ends
        gate, up = grouped_linear(rows, gate_up_proj, offsets).chunk(2, dim=-1)
        out = grouped_linear(gelu_tanh(gate) * up, down_proj, offsets)  # [T*K, D]
        out = out * weights.reshape(-1)[order].unsqueeze(-1)  # fp32
        unsorted = torch.empty_like(out)
        unsorted[order] = out
        return unsorted.view(num_tokens, top_k, -1).sum(dim=1).to(x.dtype)

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """gate_up and down in the activation dtype (engine/weights/quantize.py's experts dequantize here)."""
        return self.gate_up_proj, self.down_proj

    def stored_weights(self) -> tuple[torch.Tensor | None, ...]:
        """gate_up, down and their scales as the fused kernel reads them: (None, None) when not quantized,
        per-row scales for FP8, per-block absmax and the codebook for NF4 (engine/weights/quantize.py)."""
        return self.gate_up_proj, self.down_proj, None, None


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
