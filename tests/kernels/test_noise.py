"""kernels/noise.py against engine/runtime/noise.py's CounterNoise: bit for bit the same uniforms and renoising tokens,
for odd batches, canvas lengths and vocabularies, seeds past 32 bits and indices that differ per row, with the
outputs poisoned beforehand."""

from __future__ import annotations

import pytest
import torch

from engine.runtime.noise import CounterNoise
from kernels.noise import counter_draws, reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# seeds: 0, one past 32 bits (its high word hashed too), one near the int64 limit, a negative one (the torch
# code's arithmetic shift and masks take it)
SEEDS = [0, 2**40 + 5, 2**63 - 1, 1234, -7]


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("length", [1, 7, 256, 300])  # 300: a second, partial block of positions
@pytest.mark.parametrize("vocab", [262144, 1000, 7])
def test_draws_are_the_torch_counter_noise_bit_for_bit(rows, length, vocab, poisoned):
    seeds = [SEEDS[(row + length) % len(SEEDS)] for row in range(rows)]
    noise = CounterNoise(seeds, vocab, length, torch.device(DEVICE))
    canvas_index = torch.tensor([0, 5, 2**33 + 1][:rows], device=DEVICE)
    step_index = torch.tensor([3, 0, 47][:rows], device=DEVICE)
    uniforms, renoise = counter_draws(noise.seeds, canvas_index, step_index, length, vocab)
    assert uniforms.dtype == torch.float32 and renoise.dtype == torch.int64
    assert torch.equal(uniforms, noise.uniforms(canvas_index, step_index))
    assert torch.equal(renoise, noise.renoise(None, canvas_index, step_index))


def test_counter_noise_draws_agree_with_and_without_the_kernel():
    noise = CounterNoise([9, 2**40 + 5], 1000, 37, torch.device(DEVICE))
    canvas_index, step_index = torch.tensor([1, 0], device=DEVICE), torch.tensor([2, 6], device=DEVICE)
    fused = noise.draws(canvas_index, step_index, counter_draws)
    reference = noise.draws(canvas_index, step_index)
    assert all(torch.equal(a, b) for a, b in zip(fused, reference, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_reference_is_the_engines_counter_noise(seed):
    """kernels/noise.py keeps its own copy of the engine's hash (kernels import nothing of the engine): on random
    seeds and indices both draw the same numbers, and the kernel draws the reference's."""
    generator = torch.Generator().manual_seed(seed)
    rows, length, vocab = 4, 45, 50_000
    seeds = torch.randint(-2**63, 2**63 - 1, (rows,), generator=generator).tolist()
    noise = CounterNoise(seeds, vocab, length, torch.device(DEVICE))
    canvas_index = torch.randint(0, 2**40, (rows,), generator=generator).to(DEVICE)
    step_index = torch.randint(0, 1000, (rows,), generator=generator).to(DEVICE)
    expected = reference(noise.seeds, canvas_index, step_index, length, vocab)
    engine = noise.draws(canvas_index, step_index)
    kernel = counter_draws(noise.seeds, canvas_index, step_index, length, vocab)
    for ours, theirs, kernels_draw in zip(expected, engine, kernel, strict=True):
        assert torch.equal(ours, theirs), f"seed {seed}"
        assert torch.equal(kernels_draw, ours), f"seed {seed}"
