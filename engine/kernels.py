"""Switching the engine's hot paths to the Triton kernels of kernels/ (`--kernels on`).

Today: the fused MoE (kernels/moe.py) for every layer's experts, bf16, FP8 or NF4 weights, the decoder's
attention over the cache read in place (kernels/attention.py) in every layer, and the fused sampling head
(kernels/head.py) for every denoising step drawn from the native noise. The kernels need a
CUDA device; on a CPU they run only under Triton's interpreter (TRITON_INTERPRET=1, set before anything
imports triton), which is how the CPU tests check that the engine gives the same results with them as
without.
"""

from __future__ import annotations

import os

from torch import nn

from engine.config import KERNEL_MODES, check_choice
from engine.layers import Experts
from engine.model import Attention


def check_mode(mode: str | None) -> str:
    return check_choice("kernels", mode or "off", KERNEL_MODES)


def enable(model: nn.Module, device: str, mode: str = "on") -> None:
    """Routes the model's experts, decoder attention and sampling head through the fused kernels (mode "on"), or
    back to the reference ("off")."""
    if check_mode(mode) == "on" and device != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("--kernels on needs a CUDA device (on a CPU, only under TRITON_INTERPRET=1, for tests)")
    fused, attention, head = None, None, None
    if mode == "on":
        from kernels.attention import canvas_attention
        from kernels.head import sampling_head
        from kernels.moe import fused_moe

        fused, attention, head = fused_moe, canvas_attention, sampling_head
    model.sampling_head = head
    for module in model.modules():
        if isinstance(module, Experts):
            module.fused = fused
        elif isinstance(module, Attention):
            module.fused = attention
