"""kernels/head.py against its op-for-op reference on odd shapes, with fresh random inputs and its outputs
poisoned with NaN beforehand: a position or a token the kernel skips shows."""

from __future__ import annotations

import pytest
import torch

from engine.runtime.noise import CounterNoise
from kernels.head import inverse_cdf, reference, sampling_head

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter's bfloat16 dot is broken (Triton 3.6): CPU runs cover float32 and float16.
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])

# (positions, hidden, vocabulary, config): positions under, at and over the row tile; vocabularies that end
# mid-tile, that give some splits no tile at all, and a single tile; hidden sizes off the D tile; 35 tiles,
# which the softmax's rescaling (head.NORMALIZE_TILES a program) takes in a full chunk and a part-filled one.
SMALL = {"BLOCK_N": 16, "BLOCK_V": 32, "BLOCK_D": 16, "SPLITS": 4, "num_warps": 4, "num_stages": 1}
SHAPES = [
    (5, 24, 100, SMALL),
    (16, 40, 96, SMALL),
    (37, 48, 333, {**SMALL, "SPLITS": 3}),
    (20, 16, 70, {**SMALL, "SPLITS": 8}),  # 3 tiles over 8 requested splits
    (3, 32, 31, {**SMALL, "SPLITS": 1}),
    (6, 24, 1100, SMALL),
]
# Entropy (nats) and self-conditioning probabilities. Float32: logits summed in another order and the
# tanh written through a sigmoid differ from torch by ~1e-6 in absolute value, so 2e-5 nats is far above
# rounding and far below what a dropped tile or an unscaled split would give (> 1e-2). Float16: the kernel
# and torch round the lm_head output to float16 at the same point, but from fp32 sums taken in another order,
# so a logit may land one float16 step (2^-11 relative, ~1e-2 at |logit| 30) apart: 2e-2 nats bounds that.
# Probabilities (rtol, atol): a logit apart by d moves a probability by the relative d, and the kernel
# stores them in the model dtype twice rounded (the reference once): float32 2e-5 relative; float16 the
# one-step logit differences above (~1e-2) plus 2^-10.
ENTROPY_ATOL = {torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}
PROBS_TOL = {torch.float32: (2e-5, 1e-7), torch.float16: (2e-2, 1e-4), torch.bfloat16: (5e-2, 1e-3)}



def inputs(positions: int, hidden: int, vocab: int, dtype, seed: int):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(positions, hidden, generator=generator)
    # Logits of a few units, some past the soft-cap's knee: peaked rows and flat ones
    weight = torch.randn(vocab, hidden, generator=generator) * 3.0 * hidden**-0.5
    temperature = 0.4 + 0.4 * torch.rand(positions, generator=generator)
    noise = CounterNoise([seed, seed + 1], vocab, positions, torch.device("cpu"))
    uniforms = noise.uniforms(torch.tensor([0, 2]), torch.tensor([5, 1]))[seed % 2]
    return [tensor.to(DEVICE) for tensor in (h.to(dtype), weight.to(dtype), temperature, uniforms)]


def near_tie(scores: torch.Tensor, atol: float) -> torch.Tensor:
    """[N] bool: the two best scores of a row are within atol, where rounding may pick either."""
    top2 = scores.topk(2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]) <= atol


def near_boundary(probs: torch.Tensor, uniforms: torch.Tensor, atol: float) -> torch.Tensor:
    """[N] bool: u lies within atol of a cumulative-probability boundary, where rounding may pick either side."""
    cdf = probs.cumsum(dim=-1) / probs.sum(dim=-1, keepdim=True)
    return (cdf - uniforms[:, None]).abs().min(dim=-1).values <= atol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("softcap", [30.0, None])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:3])) if isinstance(s, tuple) else "")
def test_matches_the_reference_head(shape, softcap, dtype, poisoned):
    positions, hidden, vocab, config = shape
    h, weight, temperature, uniforms = inputs(positions, hidden, vocab, dtype, seed=positions + vocab)
    ours = sampling_head(h, weight, temperature, softcap, uniforms, config=config)
    theirs = reference(h, weight, temperature, softcap, uniforms)

    torch.testing.assert_close(ours.entropy, theirs.entropy, rtol=0, atol=ENTROPY_ATOL[dtype])
    assert ours.self_cond_probs.dtype == dtype and not ours.self_cond_probs.isnan().any()
    rtol, atol = PROBS_TOL[dtype]
    torch.testing.assert_close(ours.self_cond_probs.float(), theirs.self_cond_probs.float(), rtol=rtol, atol=atol)
    # The picks are exact wherever rounding cannot decide them: the best two logits, or u and a boundary of the
    # cumulative probabilities, not a rounding apart
    logits = torch.nn.functional.linear(h, weight).float()
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    processed = logits / temperature[:, None]
    # a float16 logit may be one float16 step (~1e-2 here) off, tempered by at most 1 / 0.4
    tie_atol = 1e-4 if dtype == torch.float32 else 0.05
    sure = ~near_tie(processed, tie_atol)
    assert sure.any()  # the comparison below is not vacuous
    assert torch.equal(ours.argmax[sure], theirs.argmax[sure])
    # float16: a logit one step off moves its probability by ~1e-2 relative
    sure = ~near_boundary(torch.softmax(processed, dim=-1), uniforms, 1e-5 if dtype == torch.float32 else 1e-2)
    assert sure.any()
    assert torch.equal(ours.sample[sure], theirs.sample[sure])


def test_without_self_conditioning_no_probabilities_are_written():
    h, weight, temperature, uniforms = inputs(9, 24, 100, torch.float32, seed=4)
    ours = sampling_head(h, weight, temperature, 30.0, uniforms, self_cond=False, config=SMALL)
    theirs = reference(h, weight, temperature, 30.0, uniforms, self_cond=False)
    assert ours.self_cond_probs is None
    torch.testing.assert_close(ours.entropy, theirs.entropy, rtol=0, atol=ENTROPY_ATOL[torch.float32])
    assert torch.equal(ours.argmax, theirs.argmax) and torch.equal(ours.sample, theirs.sample)


def test_the_softmax_goes_where_it_is_asked_to_and_only_there():
    h, weight, temperature, uniforms = inputs(9, 24, 100, torch.float32, seed=6)
    fresh = sampling_head(h, weight, temperature, 30.0, uniforms, config=SMALL)
    buffer = torch.full((20, 100), float("nan"), device=DEVICE)
    out = buffer[5:14]  # rows of a bigger buffer: contiguous, and its neighbours must stay untouched
    ours = sampling_head(h, weight, temperature, 30.0, uniforms, config=SMALL, out=out)
    assert ours.self_cond_probs.data_ptr() == out.data_ptr()
    assert torch.equal(out, fresh.self_cond_probs) and torch.equal(ours.sample, fresh.sample)
    assert buffer[:5].isnan().all() and buffer[14:].isnan().all()
    for wrong in (torch.empty(9, 99, device=DEVICE), torch.empty(9, 100, dtype=torch.float16, device=DEVICE),
                  torch.empty(100, 9, device=DEVICE).t()):
        with pytest.raises(ValueError, match="out must be a contiguous"):
            sampling_head(h, weight, temperature, 30.0, uniforms, config=SMALL, out=wrong)


def test_draws_follow_the_softmax():
    """Many positions with the same logits: the draws land on each token as often as its probability says, and
    never on one left at ~1e-14; the likely tokens lie in three different 16-token tiles, so both the tile
    search and the search inside a tile must be right."""
    positions, vocab = 1024, 40  # 64 row tiles of 16; enough draws to tell each frequency within 4 std
    likely = {3: 1.0, 10: -1.0, 20: 0.0, 37: 2.0}
    logits = torch.full((vocab,), -30.0)
    logits[list(likely)] = torch.tensor(list(likely.values()))
    weight = torch.eye(vocab, device=DEVICE)
    h = logits.to(DEVICE).expand(positions, vocab).contiguous()
    temperature = torch.ones(positions, device=DEVICE)
    uniforms = CounterNoise([11], vocab, positions, torch.device("cpu")).uniforms(torch.tensor([0]), torch.tensor([0]))
    out = sampling_head(h, weight, temperature, None, uniforms[0].to(DEVICE), self_cond=False,
                        config={**SMALL, "BLOCK_V": 16})
    counts = torch.bincount(out.sample.cpu(), minlength=vocab).float()
    expected = torch.softmax(logits, dim=0) * positions
    # binomial std <= sqrt(1024 / 4) = 16: 4 std
    assert (counts - expected).abs().max() < 64
    assert counts[list(likely)].sum() == positions  # p ~ 1e-14 for every other token


@pytest.mark.parametrize("seed", [0, 1])
def test_the_reference_is_the_engines_reference_step(seed):
    """kernels/head.py keeps its own copy of the engine's inverse CDF (kernels import nothing of the engine): the
    engine's logits, temperature, draw, entropy and self-conditioning softmax (engine/runtime/generate.py's
    reference step) give the reference head's figures exactly, on random hidden states of the tiny model."""
    from engine.runtime.noise import inverse_cdf as engine_inverse_cdf
    from engine.runtime.sampler import apply_temperature, token_entropy
    from engine.weights.checkpoint import load_model

    generator = torch.Generator().manual_seed(seed)
    model = load_model("tiny", "cpu", torch.float32).model
    rows, length = 3, 7
    h = torch.randn(rows, length, model.args.hidden_size, generator=generator)
    temperature = 0.4 + 0.4 * torch.rand(rows, generator=generator)
    noise = CounterNoise([seed, seed + 1, seed + 2], model.args.vocab_size, length, torch.device("cpu"))
    canvas_index, step_index = torch.tensor([0, 3, 1]), torch.tensor([2, 0, 5])
    processed = apply_temperature(model.logits(h), temperature)  # [B, L, V]
    weight = model.embed_tokens.weight
    theirs = reference(h.flatten(0, 1), weight, temperature.repeat_interleave(length), model.args.final_logit_softcap,
                       noise.uniforms(canvas_index, step_index).flatten())
    assert torch.equal(theirs.sample.view(rows, length), noise.samples(processed, None, canvas_index, step_index))
    assert torch.equal(theirs.argmax.view(rows, length), torch.argmax(processed, dim=-1))
    assert torch.equal(theirs.entropy.view(rows, length), token_entropy(processed))
    probs = torch.softmax(processed.to(model.dtype), dim=-1, dtype=torch.float32).to(weight.dtype)  # soft_embeddings'
    assert torch.equal(theirs.self_cond_probs.view(rows, length, -1), probs)
    weights, uniforms = torch.rand(5, 9, 33, generator=generator), torch.rand(5, 9, generator=generator)
    weights[0, 0, :4] = 0.0  # a zero weight is never drawn
    assert torch.equal(inverse_cdf(weights, uniforms), engine_inverse_cdf(weights, uniforms))
