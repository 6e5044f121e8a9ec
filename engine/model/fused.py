"""Projections that read the same input, run as one GEMM: an attention layer's q, k and v, a gated MLP's gate
and up (`--kernels on`).

A 256-position canvas makes every projection a skinny GEMM whose time is mostly its launch and its tail
wave: q, k and v all read the layer's normed input, gate and up the MLP's, so one GEMM over their stacked
weights reads the same bytes in one launch instead of three (two). The stacked tensors become the storage:
each projection's own weight is re-pointed to its rows of them, so nothing is held twice and the separate
projections (the reference path, the encoder, state_dict, weight_bytes) keep working as before.

The stacked projection is a module of the parts' own class (nn.Linear, Fp8Linear, Nf4Linear), so it runs
the same way they do, FP8 and NF4 through kernels/linear.py. It is kept out of the module tree (a plain
attribute): registered, it would show twice in state_dict and in the weight count; DiffusionGemma.use_ops
hands it the model's table all the same. Merge after loading, quantizing and any adapters, as
engine/runtime/ops.py's enable() does: a projection whose weight is replaced afterwards no longer shares it
with the stacked one (enable() merges again, from the parts).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.weights.quantize import Fp8Linear, Nf4Linear

# Per class, the tensors with a row per output feature (stacked); the others (NF4's codebook) are shared
ROW_TENSORS = {nn.Linear: ("weight",), Fp8Linear: ("weight", "scale"), Nf4Linear: ("weight", "weight_absmax")}


def stack(parts: list[nn.Module]) -> nn.Module | None:
    """One projection with the parts' output rows one after another, the parts re-pointed to their rows of
    it; None when they cannot be stacked (a LoRA adapter, a bias, different classes or inputs)."""
    kind = type(parts[0])
    if kind not in ROW_TENSORS or any(type(p) is not kind for p in parts):
        return None
    if any(getattr(p, "bias", None) is not None or p.in_features != parts[0].in_features for p in parts):
        return None
    sizes = [p.out_features for p in parts]
    if kind is nn.Linear:
        merged = nn.Linear(parts[0].in_features, sum(sizes), bias=False, device="meta")
    else:
        merged = kind(parts[0].in_features, sum(sizes), device="meta")
        if kind is Nf4Linear:
            merged.codebook = parts[0].codebook
    for name in ROW_TENSORS[kind]:
        rows = torch.cat([getattr(p, name).detach() for p in parts])
        if kind is nn.Linear:
            merged.weight = nn.Parameter(rows, requires_grad=False)
        else:
            setattr(merged, name, rows)
        for part, view in zip(parts, rows.split(sizes), strict=True):
            if kind is nn.Linear:
                part.weight = nn.Parameter(view, requires_grad=part.weight.requires_grad)
            else:
                setattr(part, name, view)
    return merged


def merge(module: nn.Module, name: str, parts: list[nn.Module]) -> None:
    """Sets module.`name` to the parts stacked (None when they cannot be), outside the module tree."""
    module.__dict__[name] = stack(parts)
