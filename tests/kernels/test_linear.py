"""kernels/linear.py against engine/weights/quantize.py's Fp8Linear and Nf4Linear on odd shapes, with fresh random
inputs and the output poisoned beforehand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.model.fused import stack
from engine.model.layers import GatedMLP, gelu_tanh
from engine.runtime.ops import kernel_ops
from engine.weights.quantize import Fp8Linear, Nf4Linear, linear_weights
from kernels import linear, tuning
from kernels.linear import default_config, gelu_gated, gelu_mul, row_tile

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
# Both sides multiply the same dequantized weights: float32 differs in summation order (and, for FP8, in
# applying the row scale to the sum rather than to each weight); half precision adds the reference's rounding
# of each dequantized weight to the activation dtype, which the kernel does only for NF4.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


# (leading shape, in, out): rows for 16-, 32-, 64- and 128-row tiles (row_tile), not filling them, widths off
# the 128-wide tiles; NF4 pads rows to whole 64-weight blocks
@pytest.mark.parametrize("shape", [((1,), 40, 24), ((3, 5), 64, 72), ((37,), 96, 130), ((2, 16), 128, 64),
                                   ((2, 150), 72, 136)])
@pytest.mark.parametrize("module_class", [Fp8Linear, Nf4Linear])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_the_quantized_linear(shape, module_class, dtype, poisoned):
    lead, in_features, out_features = shape
    generator = torch.Generator().manual_seed(in_features + out_features)
    module = module_class(in_features, out_features)
    module.load(torch.randn(out_features, in_features, generator=generator) * in_features**-0.5)
    module = module.to(DEVICE)
    x = torch.randn(*lead, in_features, generator=generator).to(DEVICE, dtype)
    expected = module(x)
    module.ops = kernel_ops()  # the kernels' table: the module's forward now takes kernels/linear.py
    ours = module(x)
    assert ours.shape == expected.shape and ours.dtype == dtype and not ours.isnan().any()
    scale = expected.float().abs().max()
    torch.testing.assert_close(ours.float() / scale, expected.float() / scale, rtol=0, atol=TOLERANCE[dtype])


# (leading shape, in, intermediate): as above, the gate's and up's rows stacked as engine/model/fused.py does
@pytest.mark.parametrize("shape", [((1,), 40, 24), ((3, 5), 64, 36), ((37,), 96, 130), ((300,), 72, 70)])
@pytest.mark.parametrize("module_class", [nn.Linear, Fp8Linear, Nf4Linear])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_gated_matches_the_gated_mlp(shape, module_class, dtype, poisoned):
    lead, in_features, inter = shape
    generator = torch.Generator().manual_seed(in_features + inter)
    mlp = GatedMLP(in_features, inter)
    if module_class is not nn.Linear:  # the projections quantized as engine/weights/quantize.py does at load
        for name in ("gate_proj", "up_proj"):
            module = module_class(in_features, inter)
            module.load(torch.randn(inter, in_features, generator=generator) * in_features**-0.5)
            setattr(mlp, name, module)
    mlp = mlp.to(DEVICE, dtype) if module_class is nn.Linear else mlp.to(DEVICE)
    x = torch.randn(*lead, in_features, generator=generator).to(DEVICE, dtype)
    expected = gelu_tanh(mlp.gate_proj(x)) * mlp.up_proj(x)
    stacked = stack([mlp.gate_proj, mlp.up_proj])
    ours = gelu_gated(x, *linear_weights(stacked), in_features)
    assert ours.shape == expected.shape and ours.dtype == dtype and not ours.isnan().any()
    # as above, plus the reference's roundings of gate, GELU and up to the activation dtype, which the
    # quantized launch keeps in float32 until its one store
    scale = expected.float().abs().max()
    torch.testing.assert_close(ours.float() / scale, expected.float() / scale, rtol=0, atol=TOLERANCE[dtype])


def test_gelu_mul_rounds_as_the_reference():
    generator = torch.Generator().manual_seed(5)
    gate_up = (3.0 * torch.randn(7, 2 * 33, generator=generator)).to(DEVICE, torch.float16)
    gate, up = gate_up.chunk(2, dim=-1)
    torch.testing.assert_close(gelu_mul(gate_up), gelu_tanh(gate) * up, rtol=1e-3, atol=1e-3)


def test_row_tiles_follow_the_rows_up_to_a_canvas_then_widen():
    assert [row_tile(rows) for rows in (1, 16, 17, 33, 64, 256, 257, 1024)] == [16, 16, 32, 64, 64, 64, 128, 128]
    assert default_config(256, gated=False, nf4=False) == {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64,
                                                            "num_warps": 8, "num_stages": 3}
    assert default_config(1024, gated=True, nf4=True) == {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64,
                                                           "num_warps": 8, "num_stages": 2}


class LaunchSpy:
    """Stands in for the grouped GEMM kernel: records each launch's tiles, then launches the real one."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append({name: kwargs[name] for name in ("BLOCK_M", "BLOCK_N", "num_stages")})
            return self.kernel[grid](*args, **kwargs)
        return launch


def test_a_tuned_entry_wins_over_the_default_tiles(monkeypatch, poisoned):
    spy = LaunchSpy(linear._grouped_gemm)
    monkeypatch.setattr(linear, "_grouped_gemm", spy)
    keys = []
    monkeypatch.setattr(tuning, "tuned", lambda kernel, device, key, size: keys.append((kernel, key, size)) or
                        {"BLOCK_M": 16, "BLOCK_N": 32, "num_stages": 4})
    module = Fp8Linear(72, 40)
    module.load(torch.randn(40, 72, generator=torch.Generator().manual_seed(3)) * 72**-0.5)
    module = module.to(DEVICE)
    x = torch.randn(70, 72, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    expected = module(x)
    module.ops = kernel_ops()  # the kernels' table: the module's forward now takes kernels/linear.py
    ours = module(x)
    assert keys == [("linear", "N=40,K=72,float32,float8_e4m3fn", 70)]
    assert spy.launches == [{"BLOCK_M": 16, "BLOCK_N": 32, "num_stages": 4}]
    torch.testing.assert_close(ours, expected, rtol=0, atol=TOLERANCE[torch.float32] * expected.abs().max().item())
