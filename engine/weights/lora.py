"""LoRA adapters on the attention and dense-MLP projections, trained, merged, saved and loaded natively.

An adapted projection computes W x + (alpha / r) B A x with A [r, in] (Kaiming-uniform) and B [out, r] (zero:
an adapter starts as a no-op). The adapters are float32 whatever the base's dtype, so a bf16 checkpoint on a
GPU trains them in full precision. The experts (3-D tensors), the router and the self-conditioning MLP keep
their weights: NeMo AutoModel's DiffusionGemma LoRA recipe also leaves the router frozen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from engine.model.network import DiffusionGemma

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        device = base.weight.device
        lora_a = torch.empty(rank, base.in_features)
        bound = 1 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)), nn.Linear's own initialisation
        lora_a.uniform_(-bound, bound, generator=generator)
        self.lora_a = nn.Parameter(lora_a.to(device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(x.to(self.lora_a.dtype), self.lora_a), self.lora_b) * self.scale
        return self.base(x) + update.to(x.dtype)

    def merged(self) -> nn.Linear:
        """The base projection with the adapter folded into its weight (in the base's dtype)."""
        weight = self.base.weight.float() + self.scale * (self.lora_b @ self.lora_a)
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=False, device=weight.device)
        linear.weight = nn.Parameter(weight.to(self.base.weight.dtype).detach(), requires_grad=False)
        return linear


def add_lora(
    model: DiffusionGemma, rank: int, alpha: float, seed: int = 0, targets: tuple[str, ...] = LORA_TARGETS
) -> list[str]:
    """Wraps the targeted projections of every layer; freezes everything else. Returns the wrapped names."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank}")
    unknown = set(targets) - set(LORA_TARGETS)
    if unknown:
        raise ValueError(f"LoRA targets must be among {LORA_TARGETS}, got {sorted(unknown)}")
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    wrapped = []
    for name, parent in list(model.layers.named_modules()):
        for child_name, child in list(parent.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(parent, child_name, LoRALinear(child, rank, alpha, generator))
                wrapped.append(f"layers.{name}.{child_name}")
    return wrapped


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


def merge_lora(model: DiffusionGemma) -> DiffusionGemma:
    """Folds every adapter into its projection, in place: the model is a plain DiffusionGemma again."""
    for name, module in lora_modules(model).items():
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, module.merged())
    return model


def save_adapters(model: DiffusionGemma, directory: Path, base_model: str) -> Path:
    """adapter_model.safetensors (the A and B matrices) and adapter_config.json (rank, alpha, targets, base)."""
    modules = lora_modules(model)
    if not modules:
        raise ValueError("the model has no LoRA adapters to save")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, module in modules.items():
        tensors[f"{name}.lora_a"] = module.lora_a.detach().cpu().contiguous()
        tensors[f"{name}.lora_b"] = module.lora_b.detach().cpu().contiguous()
    save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    first = next(iter(modules.values()))
    targets = sorted({name.rsplit(".", 1)[-1] for name in modules})
    config = {"base_model": base_model, "rank": first.rank, "alpha": first.alpha, "targets": targets}
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def load_adapters(model: DiffusionGemma, directory: Path) -> DiffusionGemma:
    """Adds the saved adapters to a model of the same shapes (call merge_lora to fold them in)."""
    config = json.loads((directory / ADAPTER_CONFIG).read_text())
    add_lora(model, config["rank"], config["alpha"], targets=tuple(config["targets"]))
    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    modules = lora_modules(model)
    if {f"{name}.lora_{part}" for name in modules for part in "ab"} != set(tensors):
        raise ValueError(f"{directory / ADAPTER_WEIGHTS}: adapters do not match the model's projections")
    with torch.no_grad():
        for name, module in modules.items():
            module.lora_a.copy_(tensors[f"{name}.lora_a"])
            module.lora_b.copy_(tensors[f"{name}.lora_b"])
    return model
