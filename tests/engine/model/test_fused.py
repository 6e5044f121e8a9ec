"""engine/model/fused.py: stacked projections give the parts' outputs side by side, hold no weight twice, and leave
the parts working; what cannot be stacked is left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.model.config import MODEL_PRESETS
from engine.model.fused import merge, stack
from engine.weights.checkpoint import random_model
from engine.weights.lora import LoRALinear
from engine.weights.quantize import Fp8Linear, Nf4Linear, quantize, weight_bytes


def _parts(kind, sizes, in_features=64):
    generator = torch.Generator().manual_seed(sum(sizes))
    parts = []
    for size in sizes:
        weight = torch.randn(size, in_features, generator=generator)
        if kind is nn.Linear:
            part = nn.Linear(in_features, size, bias=False)
            with torch.no_grad():
                part.weight.copy_(weight)
        else:
            part = kind(in_features, size)
            part.load(weight)
        parts.append(part)
    return parts


@pytest.mark.parametrize("kind", [nn.Linear, Fp8Linear, Nf4Linear])
def test_the_stack_gives_the_parts_outputs_and_shares_their_storage(kind):
    parts = _parts(kind, [48, 16, 32])
    x = torch.randn(3, 5, 64)
    expected = [part(x) for part in parts]
    merged = stack(parts)
    assert type(merged) is kind and merged.out_features == 96
    torch.testing.assert_close(merged(x), torch.cat(expected, dim=-1), rtol=0, atol=0)
    for part, before in zip(parts, expected, strict=True):  # the parts still run, now on views of the stack
        torch.testing.assert_close(part(x), before, rtol=0, atol=0)
        assert part.weight.untyped_storage().data_ptr() == merged.weight.untyped_storage().data_ptr()
    with torch.no_grad():  # one storage: a change through a part shows in the stack
        parts[1].weight.view(torch.uint8)[0, 0] ^= 1
    assert torch.equal(merged.weight[48].view(torch.uint8), parts[1].weight[0].view(torch.uint8))


def test_parts_that_cannot_be_stacked_are_left_alone():
    linear, fp8 = _parts(nn.Linear, [8])[0], _parts(Fp8Linear, [8])[0]
    assert stack([linear, fp8]) is None  # different classes
    assert stack([linear, nn.Linear(32, 8, bias=False)]) is None  # different inputs
    assert stack([linear, nn.Linear(64, 8, bias=True)]) is None  # a bias
    lora = LoRALinear(nn.Linear(64, 8, bias=False), 2, 4.0, torch.Generator().manual_seed(0))
    before = linear.weight
    assert stack([linear, lora]) is None and linear.weight is before


@pytest.mark.parametrize("fmt", ["none", "fp8", "nf4"])
def test_merging_a_model_keeps_its_state_and_its_size(fmt):
    model = quantize(random_model(MODEL_PRESETS["tiny"], "cpu", torch.float32), fmt)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    size = weight_bytes(model)
    for layer in model.layers:
        attention = layer.self_attn
        parts = [p for p in (attention.q_proj, attention.k_proj, attention.v_proj) if p is not None]
        merge(attention, "qkv_proj", parts)
        assert attention.qkv_proj is not None and "qkv_proj" not in dict(attention.named_modules())
    assert weight_bytes(model) == size  # nothing held twice, nothing registered twice
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[name], tensor) for name, tensor in state.items())
