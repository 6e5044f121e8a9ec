"""engine/model/ops.py: the model runs its hot ops through the one table it is handed, every layer and stacked
projection alike, and the reference table is what the model computes without one."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from engine.model.cache import KVCache
from engine.model.config import MODEL_PRESETS
from engine.model.fused import merge
from engine.model.network import Attention
from engine.model.ops import REFERENCE_OPS, Ops
from engine.weights.checkpoint import random_model
from engine.weights.quantize import quantize

# the ops the model's forward passes call (the step's head, draws and sampler step are engine/runtime/generate.py's)
MODEL_OPS = ("norm", "norm_rope", "attention", "attn_residual", "ffn_out", "router", "experts", "quantized_linear",
             "rope")


def counting(ops: Ops, calls: Counter) -> Ops:
    """ops with every op counted as it is called."""

    def wrap(name, op):
        def counted(*args, **kwargs):
            calls[name] += 1
            return op(*args, **kwargs)

        return counted

    return dataclasses.replace(ops, **{name: wrap(name, getattr(ops, name)) for name in MODEL_OPS})


def run(model, tokens, canvas):
    cache = KVCache.allocate(model.args, 1, 64, model.dtype, "cpu")
    with torch.no_grad():
        model.encode(tokens, torch.arange(tokens.shape[1])[None], cache)
        cache.lengths.fill_(tokens.shape[1])
        positions = tokens.shape[1] + torch.arange(canvas.shape[1])[None]
        return model.decode(canvas, positions, cache)


@pytest.mark.parametrize("fmt", ["none", "fp8"])
def test_every_hot_op_goes_through_the_table_the_model_is_handed(fmt):
    model = quantize(random_model(MODEL_PRESETS["tiny"], "cpu", torch.float32, seed=3), fmt)
    tokens, canvas = torch.tensor([[2, 40, 41, 42]]), torch.randint(3, 200, (1, model.args.canvas_length))
    expected = run(model, tokens, canvas)
    calls = Counter()
    model.use_ops(counting(REFERENCE_OPS, calls))
    got = run(model, tokens, canvas)
    assert torch.equal(got, expected)  # the same reference ops, only counted
    used = {name for name in MODEL_OPS if calls[name]}
    assert used == set(MODEL_OPS) - ({"quantized_linear"} if fmt == "none" else set())
    # the encoder's and the decoder's layers: one attention residual and one layer output each
    assert calls["attn_residual"] == calls["ffn_out"] == 2 * model.args.num_layers - 1


def test_the_table_reaches_the_stacked_projections_outside_the_module_tree():
    model = quantize(random_model(MODEL_PRESETS["tiny"], "cpu", torch.float32, seed=4), "fp8")
    attention = next(module for module in model.modules() if isinstance(module, Attention))
    merge(attention, "qkv_proj", [attention.q_proj, attention.k_proj])
    ops = dataclasses.replace(REFERENCE_OPS, rope=REFERENCE_OPS.rope)  # an equal table, another object
    model.use_ops(ops)
    takers = [module for module in model.modules() if "ops" in module.__dict__] + [attention.qkv_proj]
    assert len(takers) > 10 and all(module.ops is ops for module in takers)
    model.use_ops(REFERENCE_OPS)
    assert all(module.ops is REFERENCE_OPS for module in takers)
