"""kernels/norms.py against engine/model/layers.py's RMSNorm (and RMSNorm then RoPE) on the engine's row widths and
odd ones, with and without a weight, with fresh inputs and the output poisoned beforehand."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.model.functional import rope_cos_sin, rope_inv_freq
from engine.model.layers import RMSNorm
from engine.model.ops import REFERENCE_OPS
from kernels.norms import (
    apply_rope,
    attn_residual,
    ffn_out,
    norm_rope,
    qkv_norm_rope,
    reference,
    reference_attn_residual,
    reference_ffn_out,
    reference_qkv,
    reference_rope,
    rms_norm,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
# Float32: a sum of squares in another order and a reciprocal square root where the reference raises to
# -0.5: a few ulps of a unit-scale value. Half precision: both round the same float32 value once, so at most
# one step of the output format apart where the float32 values straddle a rounding boundary.
TOLERANCE = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


# (leading shape, width): the hidden size, head dims (as [B, T, H, Dh] views), tiny ones, odd ones, and row
# counts under, at and over a program's rows
@pytest.mark.parametrize("shape", [(3, 2816), (2, 5, 4, 256), (1, 7, 2, 512), (9, 64), (4, 3, 16), (13, 100), (1, 1)])
@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_the_reference_norm(shape, with_weight, dtype, poisoned):
    generator = torch.Generator().manual_seed(sum(shape))
    x = (3.0 * torch.randn(*shape, generator=generator) + 0.5).to(dtype).to(DEVICE)
    weight = (1.0 + 0.1 * torch.randn(shape[-1], generator=generator)).to(dtype).to(DEVICE) if with_weight else None
    ours = rms_norm(x, weight, 1e-6)
    assert ours.shape == x.shape and ours.dtype == dtype and not ours.isnan().any()
    torch.testing.assert_close(ours.float(), reference(x, weight, 1e-6).float(), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


def test_the_engine_module_takes_the_kernel_when_switched_on():
    norm = RMSNorm(48, 1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 48))
    x = torch.randn(5, 48).to(DEVICE)
    norm = norm.to(DEVICE)
    expected = norm(x)
    norm.ops = replace(REFERENCE_OPS, norm=rms_norm)
    torch.testing.assert_close(norm(x), expected, rtol=2e-6, atol=2e-6)
    norm.ops = replace(REFERENCE_OPS, norm=lambda *args: torch.zeros(()))  # the module really calls what it is given
    assert norm(x).shape == ()


# (batch, length, heads, head dim, rotated share): the sliding layers' full rotation, the global layers'
# "proportional" quarter (zero frequencies past it: cos 1, sin 0), odd lengths and head counts
@pytest.mark.parametrize("shape", [(1, 5, 4, 16, 1.0), (2, 3, 2, 32, 0.25), (1, 7, 3, 256, 1.0), (2, 2, 1, 512, 0.25)])
@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_rope_matches_the_reference(shape, with_weight, dtype, poisoned):
    batch, length, heads, dim, share = shape
    generator = torch.Generator().manual_seed(dim + heads)
    x = (2.0 * torch.randn(batch, length, heads, dim, generator=generator)).to(dtype).to(DEVICE)
    weight = (1.0 + 0.1 * torch.randn(dim, generator=generator)).to(dtype).to(DEVICE) if with_weight else None
    inv_freq = rope_inv_freq(dim, 1e4, "proportional" if share < 1 else "default", share)
    positions = torch.arange(length).expand(batch, length) + 100 * torch.arange(batch)[:, None]
    cos, sin = (t.to(DEVICE) for t in rope_cos_sin(positions, inv_freq, dtype))
    ours = norm_rope(x, weight, 1e-6, cos, sin)
    assert not ours.isnan().any()
    torch.testing.assert_close(ours.float(), reference_rope(x, weight, 1e-6, cos, sin).float(), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


@pytest.mark.parametrize("shape", [(1, 3, 2816), (2, 5, 64), (13, 100)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_next", [False, True])
def test_ffn_out_matches_the_reference(shape, dtype, with_next, poisoned):
    generator = torch.Generator().manual_seed(sum(shape))

    def draw(*size, scale=1.0, offset=0.0):
        return (offset + scale * torch.randn(*size, generator=generator)).to(dtype).to(DEVICE)

    x, dense, moe = draw(*shape, scale=4.0), draw(*shape, scale=0.3), draw(*shape, scale=2.0)
    weights = [draw(shape[-1], scale=0.1, offset=1.0) for _ in range(3)]
    scalar = torch.tensor([0.75], dtype=dtype, device=DEVICE)
    w_next = draw(shape[-1], scale=0.1, offset=1.0) if with_next else None
    ours = ffn_out(x, dense, moe, *weights, 1e-6, scalar, w_next)
    expected = reference_ffn_out(x, dense, moe, *weights, 1e-6, scalar, w_next)
    ours, expected = (ours, expected) if with_next else ((ours,), (expected,))
    # six roundings to the activation dtype on each side: where one flips, a couple of its steps apart (2^-9
    # relative in float16, 2^-6 in bfloat16); float32 within summation order. The next norm of the output
    # rounds once more.
    tolerance = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    for got, want in zip(ours, expected, strict=True):
        assert got.shape == x.shape and not got.isnan().any()
        torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)


# (batch, length, q heads, kv heads, head dim, with a v projection, rotated share): a sliding layer's q, k and v,
# a global layer's (k's raw output is v; a quarter rotated), odd lengths and head counts
@pytest.mark.parametrize("shape", [(1, 5, 4, 2, 16, True, 1.0), (2, 3, 3, 1, 32, False, 0.25),
                                   (1, 7, 2, 2, 256, True, 1.0), (2, 2, 2, 1, 512, False, 0.25)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_qkv_norm_rope_matches_the_reference(shape, dtype, poisoned):
    batch, length, q_heads, kv_heads, dim, has_v, share = shape
    generator = torch.Generator().manual_seed(dim + q_heads + length)
    width = (q_heads + (2 if has_v else 1) * kv_heads) * dim
    proj = (2.0 * torch.randn(batch, length, width, generator=generator)).to(dtype).to(DEVICE)
    q_weight, k_weight = ((1.0 + 0.1 * torch.randn(dim, generator=generator)).to(dtype).to(DEVICE) for _ in range(2))
    inv_freq = rope_inv_freq(dim, 1e4, "proportional" if share < 1 else "default", share)
    positions = torch.arange(length).expand(batch, length) + 50 * torch.arange(batch)[:, None]
    cos, sin = (t.to(DEVICE) for t in rope_cos_sin(positions, inv_freq, dtype))
    ours = qkv_norm_rope(proj, q_weight, k_weight, 1e-6, cos, sin, q_heads, kv_heads, dim)
    expected = reference_qkv(proj, q_weight, k_weight, 1e-6, cos, sin, q_heads, kv_heads, dim)
    for name, got, want in zip("qkv", ours, expected, strict=True):
        assert got.shape == want.shape and got.is_contiguous() and not got.isnan().any(), name
        torch.testing.assert_close(got.float(), want.float(), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype], msg=name)


def test_qkv_norm_rope_refuses_a_projection_of_another_width():
    proj = torch.zeros(1, 2, 5 * 16, device=DEVICE)
    cos = torch.ones(1, 2, 16, device=DEVICE)
    with pytest.raises(ValueError, match="4 q heads and 2 k"):
        qkv_norm_rope(proj, torch.ones(16, device=DEVICE), torch.ones(16, device=DEVICE), 1e-6, cos, cos, 4, 2, 16)


@pytest.mark.parametrize("shape", [(1, 3, 2816), (2, 5, 64), (13, 100)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_attn_residual_matches_the_reference(shape, dtype, poisoned):
    generator = torch.Generator().manual_seed(sum(shape) + 1)

    def draw(*size, scale=1.0, offset=0.0):
        return (offset + scale * torch.randn(*size, generator=generator)).to(dtype).to(DEVICE)

    x, attn = draw(*shape, scale=4.0), draw(*shape, scale=0.5)
    weights = [draw(shape[-1], scale=0.1, offset=1.0) for _ in range(3)]
    ours = attn_residual(x, attn, *weights, 1e-6)
    # the residual rounds twice on each side, the norms after it once more: where a rounding flips, a step or
    # two of the activation dtype apart, as for ffn_out
    tolerance = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    for name, got, want in zip(("residual", "dense", "experts"), ours, reference_attn_residual(x, attn, *weights, 1e-6),
                               strict=True):
        assert got.shape == x.shape and not got.isnan().any(), name
        torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance, msg=name)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_references_are_the_engines_ops(seed):
    """kernels/norms.py keeps its own references (kernels import nothing of the engine): on random inputs they
    are bit for bit the engine's norm, RoPE, attention residual, layer output (engine/model/ops.py) and an
    attention layer's q, k and v (engine/model/network.py)."""
    from engine.model.config import FULL, MODEL_PRESETS, SLIDING
    from engine.model.functional import apply_rope as engine_apply_rope
    from engine.model.network import Attention

    generator = torch.Generator().manual_seed(seed)

    def draw(*size, scale=1.0, offset=0.0):
        return offset + scale * torch.randn(*size, generator=generator)

    x, other, third = draw(2, 5, 48, scale=3.0), draw(2, 5, 48), draw(2, 5, 48, scale=2.0)
    weights = [draw(48, scale=0.1, offset=1.0) for _ in range(4)]
    scalar = torch.tensor([0.75])
    assert torch.equal(REFERENCE_OPS.norm(x, weights[0], 1e-6), reference(x, weights[0], 1e-6))
    assert torch.equal(REFERENCE_OPS.norm(x, None, 1e-6), reference(x, None, 1e-6))
    for engine, ours in ((REFERENCE_OPS.attn_residual(x, other, *weights[:3], 1e-6),
                          reference_attn_residual(x, other, *weights[:3], 1e-6)),
                         (REFERENCE_OPS.ffn_out(x, other, third, *weights[:3], 1e-6, scalar, weights[3]),
                          reference_ffn_out(x, other, third, *weights[:3], 1e-6, scalar, weights[3]))):
        assert all(torch.equal(a, b) for a, b in zip(engine, ours, strict=True))

    heads = draw(2, 5, 3, 32)
    positions = torch.arange(5).expand(2, 5) + 9 * torch.arange(2)[:, None]
    cos, sin = rope_cos_sin(positions, rope_inv_freq(32, 1e4, "proportional", 0.25), torch.float32)
    assert torch.equal(engine_apply_rope(heads, cos, sin), apply_rope(heads, cos, sin))
    assert torch.equal(REFERENCE_OPS.norm_rope(heads, weights[0][:32], 1e-6, cos, sin),
                       reference_rope(heads, weights[0][:32], 1e-6, cos, sin))

    args = MODEL_PRESETS["tiny"]
    for layer in (args.layer_types.index(SLIDING), args.layer_types.index(FULL)):
        attention = Attention(args, layer)
        with torch.no_grad():
            for parameter in attention.parameters():
                parameter.copy_(draw(*parameter.shape, scale=0.2, offset=1.0 if parameter.dim() == 1 else 0.0))
        hidden = draw(2, 5, args.hidden_size)
        dim = attention.head_dim
        cos, sin = rope_cos_sin(positions, rope_inv_freq(dim, 1e4, "default", 1.0), torch.float32)
        projections = [p(hidden) for p in (attention.q_proj, attention.k_proj, attention.v_proj) if p is not None]
        with torch.no_grad():
            engine = attention.query_key_value(hidden, cos, sin)
            ours = reference_qkv(torch.cat(projections, dim=-1), attention.q_norm.weight, attention.k_norm.weight,
                                 attention.q_norm.eps, cos, sin, attention.num_heads, attention.num_kv_heads, dim)
        assert all(torch.equal(a, b) for a, b in zip(engine, ours, strict=True)), f"layer {layer}"
