"""kernels/rope.py against engine/model/layers.py's rope_cos_sin: both tables of the real model's two layer kinds
(full rotation; a quarter rotated with zero frequencies after it) and tiny ones, long positions included."""

from __future__ import annotations

import pytest
import torch

from engine.model.functional import rope_cos_sin, rope_inv_freq
from kernels.rope import rope_tables

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
# The same float32 angle on both sides; cos and sin from another library (libdevice, or numpy in the
# interpreter, against torch's) within an ulp or two of a value at most 1; half precision: the cast of values
# that close lands on the same step but where they straddle a rounding boundary, one step apart.
TOLERANCE = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.mark.parametrize("dims", [(256, 512, 0.25), (16, 32, 0.25), (12, 40, 1.0)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_the_reference_tables(dims, dtype, poisoned):
    local_dim, global_dim, share = dims
    local = rope_inv_freq(local_dim, 1e4, "default", 1.0)
    full = rope_inv_freq(global_dim, 1e6, "proportional" if share < 1 else "default", share)
    positions = torch.tensor([[0, 1, 2, 7], [300, 4097, 8191, 65535]])  # rows of a batch, prompt offsets apart
    ours = rope_tables(positions.to(DEVICE), local.to(DEVICE), full.to(DEVICE), dtype)
    for (cos, sin), inv_freq in zip(ours, (local, full), strict=True):
        expected_cos, expected_sin = rope_cos_sin(positions, inv_freq, dtype)
        for got, want in ((cos, expected_cos), (sin, expected_sin)):
            assert got.shape == want.shape and got.dtype == dtype
            torch.testing.assert_close(got.cpu().float(), want.float(), rtol=0, atol=TOLERANCE[dtype])


def test_refuses_rounded_frequencies():
    freq = rope_inv_freq(16, 1e4, "default", 1.0)
    with pytest.raises(ValueError, match="must be float32"):
        rope_tables(torch.zeros(1, 2, dtype=torch.long, device=DEVICE), freq.half().to(DEVICE), freq.to(DEVICE),
                    torch.float16)
