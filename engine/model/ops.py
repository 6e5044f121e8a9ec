"""The table of the model's hot ops, handed to the model whole: the PyTorch references, or the Triton kernels.

`Ops` has one field per op the layers and the step call; `REFERENCE_OPS` holds the references below, which
are the engine's numerics (engine/model/functional.py's math, in transformers' order and dtypes).
engine/runtime/ops.py builds the kernels' table for `--kernels on` and hands it over with
`DiffusionGemma.use_ops`. A layer calls `self.ops.<op>(...)`, asking only whether an optional op is there.

Five fields are None in the references' table: the step's sampling head, its one-launch noise draws and its
sampler step (engine/runtime/generate.py runs its own reference code then), and the two ops on stacked
projections, `qkv` and `gated` (the layers run their separate projections then: stacking them is the
kernels' layout, engine/model/fused.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.model.cache import AttentionMask, cached_rows
from engine.model.functional import apply_rope, gelu_tanh, grouped_linear, rms_norm, rope_cos_sin


@dataclass(frozen=True)
class Ops:
    """One field per hot op; the shapes are the references' below, which the kernels take alike."""

    norm: Callable  # (x, weight | None, eps) -> RMSNorm(x)
    norm_rope: Callable  # (x [B, T, H, D], weight, eps, cos, sin) -> RoPE(RMSNorm(x))
    attention: Callable  # (q, k, v, cache keys, cache values, lengths, rows, mask, kv_len, window) -> [B, L, H, Dh]
    attn_residual: Callable  # (x, attn_out, w_post, w_dense, w_experts, eps) -> residual, dense_in, experts_in
    ffn_out: Callable  # (x, dense, moe, w_dense, w_moe, w_sum, eps, scalar, w_next) -> h, next norm of h
    router: Callable  # (x [T, D], eps, scale, root_size, proj weight, per-expert scale, top_k) -> weights, ids
    experts: Callable  # (Experts module, x [T, D], weights, ids [T, K]) -> [T, D]
    quantized_linear: Callable  # (Fp8Linear or Nf4Linear, x) -> x @ W^T
    rope: Callable  # (positions [B, T], local inv_freq, global inv_freq, dtype) -> local (cos, sin), global
    qkv: Callable | None = None  # (stacked q|k|v output, q weight, k weight, eps, cos, sin, H, Hkv, Dh) -> q, k, v
    gated: Callable | None = None  # (x, stacked gate|up projection) -> gelu(gate) * up
    head: Callable | None = None  # kernels/head.py's sampling_head
    noise: Callable | None = None  # kernels/noise.py's counter_draws
    advance: Callable | None = None  # (state, samples, argmax, entropy, renoise, generation) -> stopped rows


def norm_rope(x, weight, eps: float, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return apply_rope(rms_norm(x, weight, eps), cos, sin)


def attention(q, k, v, cache_keys, cache_values, lengths, rows, mask: AttentionMask, kv_len: int,
              window: int | None) -> torch.Tensor:
    """The canvas q [B, L, H, Dh] over the cached slots [mask.start, kv_len) of `rows` and over its own k, v:
    the cached prefix and the canvas concatenated (a copy per layer and step) under mask.mask -> [B, L, H, Dh].
    lengths and window are the kernel's (it masks from them); mask.mask already holds both."""
    keys = torch.cat((cached_rows(cache_keys, rows, mask.start, kv_len), k), dim=1)  # [B, S + L, Hkv, Dh]
    values = torch.cat((cached_rows(cache_values, rows, mask.start, kv_len), v), dim=1)
    return scaled_attention(q, keys, values, mask.mask)


def scaled_attention(q, k, v, mask: torch.Tensor) -> torch.Tensor:
    """q [B, T, H, Dh], k/v [B, S, Hkv, Dh], mask [B, 1, T or 1, S] bool -> [B, T, H, Dh], scale 1.0."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=1.0, enable_gqa=True
    )  # [B, H, T, Dh]
    return out.transpose(1, 2)


def attn_residual(x, attn_out, w_post, w_dense, w_experts, eps: float) -> tuple[torch.Tensor, ...]:
    """The residual after attention and its two pre-feed-forward norms."""
    x = x + rms_norm(attn_out, w_post, eps)
    return x, rms_norm(x, w_dense, eps), rms_norm(x, w_experts, eps)


def ffn_out(x, dense, moe, w_dense, w_moe, w_sum, eps: float, scalar, w_next) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's output from its branches, (x + norm(norm_1(dense) + norm_2(moe))) * scalar, and the next norm of it."""
    h = (x + rms_norm(rms_norm(dense, w_dense, eps) + rms_norm(moe, w_moe, eps), w_sum, eps)) * scalar
    return h, rms_norm(h, w_next, eps)


def router(x, eps: float, scale, root_size: float, proj_weight, per_expert_scale, top_k: int):
    """Scale-free RMSNorm x learned scale x hidden^-0.5 -> logits -> fp32 softmax -> top-k -> renormalise ->
    x per-expert scale: weights [T, K] fp32, expert ids [T, K]."""
    h = rms_norm(x, None, eps) * scale * root_size
    probs = F.softmax(F.linear(h, proj_weight), dim=-1, dtype=torch.float32)  # [T, E]
    weights, experts = torch.topk(probs, k=top_k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights * per_expert_scale[experts], experts


def experts(module, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [T, D], weights/ids [T, K] -> [T, D] through the module's experts, dequantized to x's dtype.

    Token-expert pairs are sorted by expert and run as one grouped GEMM per projection (no host sync, so
    it can sit inside a CUDA graph). Weighted outputs are summed over k in fp32, then cast, as the
    reference's default ("grouped_mm") experts path does."""
    num_tokens, top_k = ids.shape
    gate_up_proj, down_proj = module.weights(x.dtype)
    num_experts = gate_up_proj.shape[0]
    flat_experts = ids.reshape(-1)  # [T*K]
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


def quantized_linear(module, x: torch.Tensor) -> torch.Tensor:
    """An FP8 or NF4 projection with its weight dequantized to x's dtype first (engine/weights/quantize.py)."""
    return F.linear(x, module.dequantized(x.dtype))


def rope(positions, local_inv_freq, global_inv_freq, dtype: torch.dtype):
    """Both RoPE tables of a step: (cos, sin) of the sliding layers, then of the global ones."""
    return rope_cos_sin(positions, local_inv_freq, dtype), rope_cos_sin(positions, global_inv_freq, dtype)


REFERENCE_OPS = Ops(
    norm=rms_norm, norm_rope=norm_rope, attention=attention, attn_residual=attn_residual, ffn_out=ffn_out,
    router=router, experts=experts, quantized_linear=quantized_linear, rope=rope,
)
