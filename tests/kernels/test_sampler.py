"""kernels/sampler.py against engine/runtime/generate.py's `advance`: the same state after a step, field for field,
for running and idle rows, with and without a stability history, and the stop flags."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.model.config import GenerationArgs
from engine.runtime.generate import advance as reference
from engine.runtime.generate import new_state
from kernels.sampler import advance

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def step_inputs(rows: int, length: int, history: int, seed: int):
    """A state mid-denoising and one step's head outputs. Entropies are distinct multiples of 2^-6 (and some
    zeros): every sum of them is exact in float32, so the acceptance and the mean cannot depend on the order
    of the sums, and the comparison can be exact."""
    generator = torch.Generator().manual_seed(seed)
    generation = GenerationArgs(stability_threshold=history, entropy_bound=0.5, confidence_threshold=0.05)
    state = new_state(generation, rows, length, [5] * rows, 100, "cpu", torch.float32)
    state.canvas = torch.randint(0, 100, (rows, length), generator=generator)
    state.argmax = torch.randint(0, 100, (rows, length), generator=generator)
    state.entropy = torch.rand(rows, length, generator=generator)
    state.accepted = torch.rand(rows, length, generator=generator) < 0.5
    state.cur_step = torch.where(torch.arange(rows) == 2, 1, 3).int()  # row 2 runs out of steps
    state.steps_done = torch.randint(0, 9, (rows,), generator=generator)
    state.self_cond_mask = torch.rand(rows, generator=generator) < 0.5
    state.running = torch.arange(rows) % 3 != 1  # every third row idle
    argmax = torch.randint(0, 4, (rows, length), generator=generator)
    entropy = torch.stack([torch.randperm(length, generator=generator) for _ in range(rows)]).float() * 2**-6
    entropy[:, ::5] = 0.0
    entropy[0] = entropy[0] * 2**-6  # a confident row
    for k in range(history):  # some rows stable: their history is this step's argmax
        state.history[k] = torch.where((torch.arange(rows) % 2 == 0)[:, None], argmax,
                                       torch.randint(0, 4, (rows, length), generator=generator))
    samples = torch.randint(0, 100, (rows, length), generator=generator)
    renoise = torch.randint(0, 100, (rows, length), generator=generator)
    return state, generation, (samples, argmax, entropy, renoise)


@pytest.mark.parametrize("rows, length", [(1, 7), (5, 32), (4, 256), (3, 100)])
@pytest.mark.parametrize("history", [0, 1, 2])
def test_matches_the_reference_step(rows, length, history, poisoned):
    state, generation, step = step_inputs(rows, length, history, seed=rows * length + history)
    expected = dataclasses.replace(state, **{f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)})
    stopped_expected = reference(expected, *step, generation)
    ours = dataclasses.replace(state, **{f.name: getattr(state, f.name).clone().to(DEVICE)
                                         for f in dataclasses.fields(state)})
    samples, argmax, entropy, renoise = (t.to(DEVICE) for t in step)
    stopped = advance(ours.canvas, ours.argmax, ours.entropy, ours.accepted, ours.history, ours.running,
                      ours.cur_step, ours.steps_done, ours.self_cond_mask, samples, argmax, entropy, renoise,
                      generation.entropy_bound, generation.confidence_threshold)
    assert torch.equal(stopped.cpu(), stopped_expected)
    for field in dataclasses.fields(state):
        assert torch.equal(getattr(ours, field.name).cpu(), getattr(expected, field.name)), field.name
    # not vacuous: a row that ran accepts part of its canvas, not all of it; row 0 stops (confident, and stable
    # when there is a history), row 2 runs out of steps, row 3 (not confident) runs on
    assert bool(stopped_expected[0])
    if rows > 2:
        assert expected.accepted[2].any() and not expected.accepted[2].all() and bool(stopped_expected[2])
    if rows > 3:
        assert bool(expected.running[3])


def test_refuses_what_it_cannot_read():
    state, generation, (samples, argmax, entropy, renoise) = step_inputs(2, 8, 1, seed=0)
    with pytest.raises(ValueError, match="samples must be a contiguous"):
        advance(state.canvas, state.argmax, state.entropy, state.accepted, state.history, state.running,
                state.cur_step, state.steps_done, state.self_cond_mask, samples[:, :4], argmax, entropy, renoise,
                0.5, 0.05)
