"""The counter-based ("native") random source: deterministic, per row, and correctly distributed."""

from __future__ import annotations

import torch

from engine.runtime.noise import CounterNoise

VOCAB, CANVAS = 7, 4096


def test_draws_depend_only_on_seed_canvas_step_and_position():
    noise = CounterNoise([1, 2, 1], VOCAB, CANVAS, torch.device("cpu"))
    canvas_index, step = torch.tensor([0, 0, 0]), torch.tensor([3, 3, 3])
    tokens = noise.renoise(None, canvas_index, step)
    assert torch.equal(tokens[0], tokens[2]) and not torch.equal(tokens[0], tokens[1])
    alone = CounterNoise([1], VOCAB, CANVAS, torch.device("cpu")).renoise(None, canvas_index[:1], step[:1])
    assert torch.equal(alone[0], tokens[0])  # batch mates do not matter
    assert not torch.equal(noise.renoise(None, canvas_index, step + 1)[0], tokens[0])
    assert not torch.equal(noise.renoise(None, canvas_index + 1, step)[0], tokens[0])
    assert not torch.equal(noise.canvas([0], canvas_index)[0], tokens[0])  # streams differ too


def test_samples_follow_the_distribution_and_never_pick_impossible_tokens():
    probs = torch.tensor([0.5, 0.3, 0.0, 0.2, 0.0, 0.0, 0.0]).expand(1, CANVAS, VOCAB)
    noise = CounterNoise([42], VOCAB, CANVAS, torch.device("cpu"))
    samples = noise.samples(probs.log() + 3.0, None, torch.tensor([0]), torch.tensor([0]))  # any logits offset
    counts = torch.bincount(samples[0], minlength=VOCAB)
    assert counts[[2, 4, 5, 6]].sum() == 0
    # binomial std for p=0.5 over 4096 draws is 32: 4 std = 128
    expected = torch.tensor([0.5, 0.3, 0.2]) * CANVAS
    assert (counts[[0, 1, 3]] - expected).abs().max() < 128


def test_uniform_tokens_cover_the_vocabulary_evenly():
    noise = CounterNoise([7], VOCAB, CANVAS, torch.device("cpu"))
    tokens = noise.renoise(None, torch.tensor([0]), torch.tensor([0]))
    counts = torch.bincount(tokens[0], minlength=VOCAB)
    assert tokens.min() >= 0 and tokens.max() < VOCAB
    # each of 7 ids expects 585 of 4096 (std ~22.4): within 4 std
    assert (counts - CANVAS / VOCAB).abs().max() < 90
