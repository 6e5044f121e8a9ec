"""Low-bit weights: `--quantize fp8` stores the layers' projections and experts in FP8.

Weight-only FP8 (e4m3, the format of Hopper's FP8 tensor cores and of published FP8 checkpoints) with one
float32 scale per output channel (per expert and output channel for the experts): scale = max|row| / 448,
the largest finite e4m3 value, so every row uses the whole range. That halves the weights' memory, which is
what lets the 26B-A4B model fit beside its caches on a 40-48 GB card, and is the format the fused MoE kernel
(issue 6) reads; until it lands, each projection is dequantized to the activation dtype when it runs (one
layer's weights at a time), so FP8 here saves memory, not time.

What stays in the checkpoint's dtype: the embedding matrix (tied to the sampling head, whose logits feed the
entropy-bound acceptance), the router (few weights, and its rounding would send tokens to other experts),
the self-conditioning MLP (outside the layers, small), norms and scalars.

Quantization happens as each tensor is loaded (`load_into`), so a bf16 copy of the whole model never exists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import QUANTIZE_FORMATS, check_choice
from engine.layers import Experts
from engine.model import DiffusionGemma

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")


def check_format(name: str | None) -> str:
    return check_choice("quantize", name or "none", QUANTIZE_FORMATS, " (nf4 is not available yet)")


def to_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [..., out, in] -> (e4m3 weight, float32 scale [..., out]); zero rows get scale 1."""
    amax = weight.detach().abs().amax(dim=-1).float()
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    quantized = (weight.float() / scale.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return quantized, scale


def from_fp8(quantized: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (quantized.to(torch.float32) * scale.unsqueeze(-1)).to(dtype)


class Fp8Linear(nn.Module):
    """A bias-free nn.Linear whose weight is FP8 with per-output-channel scales."""

    def __init__(self, in_features: int, out_features: int, device: torch.device | str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Buffer(torch.empty(out_features, in_features, dtype=FP8, device=device))
        self.scale = nn.Buffer(torch.ones(out_features, dtype=torch.float32, device=device))

    def load(self, weight: torch.Tensor) -> None:
        self.weight, self.scale = to_fp8(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, from_fp8(self.weight, self.scale, x.dtype))


class Fp8Experts(Experts):
    """The grouped experts with FP8 weights: gate_up [E, 2I, D] and down [E, D, I], scales [E, out]."""

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int, device=None):
        nn.Module.__init__(self)  # not Experts.__init__: its bf16 parameters are what this replaces
        self.gate_up_proj = nn.Buffer(torch.empty(num_experts, 2 * intermediate_size, hidden_size, dtype=FP8,
                                                  device=device))
        self.down_proj = nn.Buffer(torch.empty(num_experts, hidden_size, intermediate_size, dtype=FP8, device=device))
        self.gate_up_scale = nn.Buffer(torch.ones(num_experts, 2 * intermediate_size, device=device))
        self.down_scale = nn.Buffer(torch.ones(num_experts, hidden_size, device=device))

    def load(self, name: str, weight: torch.Tensor) -> None:
        quantized, scale = to_fp8(weight)
        setattr(self, name, quantized)
        setattr(self, name.removesuffix("_proj") + "_scale", scale)

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return (from_fp8(self.gate_up_proj, self.gate_up_scale, dtype),
                from_fp8(self.down_proj, self.down_scale, dtype))

    def stored_weights(self):
        return self.gate_up_proj, self.down_proj, self.gate_up_scale, self.down_scale


def prepare(model: DiffusionGemma, fmt: str) -> None:
    """Swaps the quantized modules in (empty, on the model's device: meta while a checkpoint loads)."""
    if check_format(fmt) == "none":
        return
    device = model.norm.weight.device
    for block in model.layers:
        for path in LINEARS:
            parent_name, _, leaf = path.rpartition(".")
            parent = block.get_submodule(parent_name)
            linear = getattr(parent, leaf)
            if linear is not None:
                setattr(parent, leaf, Fp8Linear(linear.in_features, linear.out_features, device))
        experts = block.experts
        num, double_inter, hidden = experts.gate_up_proj.shape
        block.experts = Fp8Experts(num, hidden, double_inter // 2, device)


def load_into(model: nn.Module, name: str, tensor: torch.Tensor) -> bool:
    """Stores a checkpoint tensor into a quantized module, quantizing it; False when `name` is not one."""
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name)
    if isinstance(module, Fp8Linear) and leaf == "weight":
        module.load(tensor)
        return True
    if isinstance(module, Fp8Experts) and leaf in ("gate_up_proj", "down_proj"):
        module.load(leaf, tensor)
        return True
    return False


def quantize(model: DiffusionGemma, fmt: str) -> DiffusionGemma:
    """Quantizes a loaded model in place (presets with random weights; checkpoints use load_into)."""
    if check_format(fmt) == "none":
        return model
    full = dict(model.state_dict())
    prepare(model, fmt)  # the replaced modules' full-precision tensors live on in `full` only
    for name in list(full):
        load_into(model, name, full.pop(name))  # freed one by one: the peak is the model plus one tensor
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers: what the weights take on the device."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())
