"""Switching the engine's hot paths to the Triton kernels of kernels/ (`--kernels on`).

`kernel_ops()` is the table of engine/model/ops.py with the kernels in it, and `enable` hands it (or, for
"off", the references' table) to the model. The ops it fills:
- kernels/moe.py: every layer's experts, bf16, FP8 or NF4 weights read as stored;
- kernels/linear.py: the attention and dense-MLP projections when their weights are FP8 or NF4;
- kernels/attention.py: the decoder's attention over the cache read in place;
- kernels/norms.py: every RMSNorm, q, k and v's norms with RoPE, the residual after attention with the norms
  it feeds, and each layer's closing norms and sums;
- kernels/linear.py also: the dense MLPs' gate and up with the GELU gate, in one launch when quantized;
- kernels/router.py: the MoE router;
- kernels/rope.py: both RoPE tables of a step;
- kernels/head.py: the sampling head of every denoising step drawn from the native noise;
- kernels/noise.py: that noise's two draws of a step (the head's uniforms, the renoising tokens) in one launch;
- kernels/sampler.py: the sampler's step after the head (acceptance, next canvas, stop test, state) in one.

Projections that read the same input (q, k and v; gate and up) are stacked into one (engine/model/fused.py)
when the kernels are switched on: one GEMM each, whose output the fused norms and gate read as it lies.

The kernels need a CUDA device; on a CPU they run only under Triton's interpreter (TRITON_INTERPRET=1, set
before anything imports triton), which is how the CPU tests check that the engine gives the same results
with them as without.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from engine.model.config import KERNEL_MODES, check_choice
from engine.model.fused import merge
from engine.model.layers import Experts, GatedMLP
from engine.model.network import Attention
from engine.model.ops import REFERENCE_OPS, Ops
from engine.weights.quantize import linear_weights


def check_mode(mode: str | None) -> str:
    return check_choice("kernels", mode or "off", KERNEL_MODES)


def enable(model: nn.Module, device: str, mode: str = "on") -> None:
    """Routes the model's hot paths through the kernels (mode "on"), or back to their references ("off")."""
    if check_mode(mode) == "on" and device != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("--kernels on needs a CUDA device (on a CPU, only under TRITON_INTERPRET=1, for tests)")
    if mode == "on" and device == "cuda":
        check_capability(model, torch.cuda.get_device_capability())
    ops = kernel_ops() if mode == "on" else REFERENCE_OPS
    if mode == "on":
        merge_projections(model)
    model.use_ops(ops)


def merge_projections(model: nn.Module) -> list[nn.Module]:
    """Stacks each attention layer's q, k and v and each gated MLP's gate and up (engine/model/fused.py), afresh
    from their current weights; returns the stacked projections."""
    stacked = []
    for module in model.modules():
        if isinstance(module, Attention):
            merge(module, "qkv_proj", [p for p in (module.q_proj, module.k_proj, module.v_proj) if p is not None])
            stacked.append(module.qkv_proj)
        elif isinstance(module, GatedMLP):
            merge(module, "gate_up", [module.gate_proj, module.up_proj])
            stacked.append(module.gate_up)
    return [module for module in stacked if module is not None]


def kernel_ops() -> Ops:
    """The table with the kernels in every op; imported only when switched on (they need triton)."""
    from kernels.attention import canvas_attention
    from kernels.head import sampling_head
    from kernels.linear import gelu_gated, quantized_linear
    from kernels.moe import fused_moe
    from kernels.noise import counter_draws
    from kernels.norms import attn_residual, ffn_out, norm_rope, qkv_norm_rope, rms_norm
    from kernels.rope import rope_tables
    from kernels.router import route
    from kernels.sampler import advance

    def attention(q, k, v, cache_keys, cache_values, lengths, rows, mask, kv_len, window):
        # the kernel masks from the lengths and the window: only the first slot read comes from the mask
        return canvas_attention(q, k, v, cache_keys, cache_values, lengths, rows, mask.start, kv_len, window)

    def experts(module, x, weights, ids):
        gate_up_proj, down_proj, *scales = module.stored_weights()  # as stored: FP8 and NF4 are not dequantized
        return fused_moe(x, gate_up_proj, down_proj, weights, ids, *scales)

    def sampler_step(state, samples, argmax, entropy, renoise, generation):
        # the state's tensors updated in place
        return advance(
            state.canvas, state.argmax, state.entropy, state.accepted, state.history, state.running, state.cur_step,
            state.steps_done, state.self_cond_mask, samples, argmax, entropy, renoise, generation.entropy_bound,
            generation.confidence_threshold,
        )

    return Ops(
        norm=rms_norm, norm_rope=norm_rope, attention=attention, attn_residual=attn_residual, ffn_out=ffn_out,
        router=route, experts=experts, rope=rope_tables, qkv=qkv_norm_rope,
        # projection modules (a stacked one of engine/model/fused.py for gated) read as the kernel takes them
        quantized_linear=lambda module, x: quantized_linear(x, *linear_weights(module), module.in_features),
        gated=lambda x, projection: gelu_gated(x, *linear_weights(projection), projection.in_features),
        head=sampling_head, noise=counter_draws, advance=sampler_step,
    )


# Triton compiles e4m3 (the FP8 of engine/weights/quantize.py) only for Ada and Hopper; tests/kernels checks the
# kernels compile for sm_80, sm_89 and sm_90.
FP8_CAPABILITY = (8, 9)


def check_capability(model: nn.Module, capability: tuple[int, int]) -> None:
    """Refuses, at load rather than at the first step, what this GPU cannot compile: FP8 experts before Ada."""
    fp8 = any(isinstance(m, Experts) and m.stored_weights()[0].dtype == torch.float8_e4m3fn for m in model.modules())
    if fp8 and tuple(capability) < FP8_CAPABILITY:
        major, minor = capability
        raise ValueError(
            f"--kernels on with --quantize fp8 needs an Ada or Hopper GPU (compute capability 8.9 or newer); this "
            f"one is {major}.{minor}: use --quantize nf4, or --kernels off (fp8 weights are then dequantized as "
            "they run)"
        )
