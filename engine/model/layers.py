"""Model math building blocks: RMSNorm, the gated MLP, the MoE router and the grouped experts.

Each module holds its weights and calls its op from the table of engine/model/ops.py that the model hands it
(`ops`, the PyTorch references until `DiffusionGemma.use_ops` hands another). The references mirror
transformers' DiffusionGemma in order and dtype (fp32 norms cast back, fp32 router softmax, fp32 routing
weights), so float32 results agree with the reference to rounding and bf16 ones bit for bit wherever the
underlying kernels agree.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.model.functional import gelu_tanh
from engine.model.ops import REFERENCE_OPS


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, with_scale: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if with_scale else None
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.norm(x, self.weight, self.eps)


class GatedMLP(nn.Module):
    gate_up = None  # engine/model/fused.py: gate_proj and up_proj as one projection

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ops.gated is not None and self.gate_up is not None:  # one GEMM, the gate fused into it or after it
            return self.down_proj(self.ops.gated(x, self.gate_up))
        return self.down_proj(gelu_tanh(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    """Scale-free RMSNorm x learned scale x hidden^-0.5 -> logits -> fp32 softmax -> top-k -> renormalise -> x
    per-expert scale."""

    def __init__(self, hidden_size: int, num_experts: int, top_k: int, eps: float):
        super().__init__()
        self.top_k = top_k
        self.root_size = hidden_size**-0.5
        self.norm = RMSNorm(hidden_size, eps, with_scale=False)
        self.proj = nn.Linear(hidden_size, num_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(hidden_size))
        self.per_expert_scale = nn.Parameter(torch.ones(num_experts))
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [T, D] -> weights [T, K] fp32, expert ids [T, K]."""
        return self.ops.router(x, self.norm.eps, self.scale, self.root_size, self.proj.weight, self.per_expert_scale,
                               self.top_k)


class Experts(nn.Module):
    """Expert weights as 3D tensors: gate_up [E, 2I, D] (gate rows first), down [E, D, I]."""

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * intermediate_size, hidden_size))
        self.down_proj = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size))
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        """x [T, D], weights/experts [T, K] -> [T, D] (engine/model/ops.py `experts`: one grouped GEMM per
        projection, no host sync)."""
        return self.ops.experts(self, x, weights, experts)

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """gate_up and down in the activation dtype (engine/weights/quantize.py's experts dequantize here)."""
        return self.gate_up_proj, self.down_proj

    def stored_weights(self) -> tuple[torch.Tensor | None, ...]:
        """gate_up, down and their scales as the fused kernel reads them: (None, None) when not quantized,
        per-row scales for FP8, per-block absmax and the codebook for NF4 (engine/weights/quantize.py)."""
        return self.gate_up_proj, self.down_proj, None, None
