"""Generation: against transformers' generate, batching, streaming, cancellation, seeds, EOS, context limits,
canvases started from given tokens."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import engine.runtime.generate as generate_module
from engine.model.config import GenerationArgs
from engine.runtime.generate import (
    ContextTooLongError,
    Request,
    RequestError,
    generate,
    generate_stream,
    new_state,
    start_canvases,
)
from engine.runtime.noise import make_noise
from engine.runtime.reference import load_reference, reference_generate
from engine.runtime.sampler import pad_after_eos
from engine.text.slots import SlotChoice
from engine.text.tokenizer import TURN_END_ID
from engine.weights.checkpoint import load_checkpoint
from jobs.cancel import Cancellation
from tests.engine.copying import make_copying
from tests.engine.tiny import TinySpec

CPU = torch.device("cpu")

WIDE = TinySpec(num_layers=6, num_experts=16, top_k=4, vocab_size=400, sliding_window=16, canvas_length=24, seed=3)
SMALL = TinySpec(num_layers=2, num_experts=4, top_k=1, vocab_size=264, sliding_window=40, seed=5)


def prompt_of(length: int, vocab: int = 264, offset: int = 3) -> list[int]:
    return [offset + (7 * i) % (vocab - offset) for i in range(length)]


@pytest.mark.parametrize(
    "spec, prompt_len, max_new, steps, seed",
    [
        (TinySpec(), 10, 32, 12, 0),  # two canvases
        (TinySpec(), 23, 16, 5, 1),  # prompt longer than the sliding window
        (WIDE, 30, 60, 7, 2),  # three canvases, 16 experts top-4
        (SMALL, 4, 16, 20, 3),  # one canvas, top-1 routing, vocab 264
        (TinySpec(confident_token=1), 9, 48, 12, 0),  # adaptive stop at step 2, EOS first: one canvas, pads
        (TinySpec(confident_token=40), 9, 40, 12, 0),  # adaptive stop each canvas, no EOS: three canvases
    ],
    ids=["two-canvases", "long-prompt", "wide", "small", "eos", "early-stop"],
)
def test_native_matches_transformers_generate_with_reference_rng(checkpoint, spec, prompt_len, max_new, steps, seed):
    directory = checkpoint(spec)
    native = load_checkpoint(directory)
    reference = load_reference(str(directory), "cpu", torch.float32)
    generation = native.generation.replace(max_new_tokens=max_new, max_denoising_steps=steps)
    prompt = prompt_of(prompt_len)
    expected_ids, expected_steps = reference_generate(reference, prompt, generation, seed)
    (result,) = generate(native.model, [Request(prompt, seed=seed)], generation, rng="reference")
    assert result.token_ids == expected_ids
    assert result.steps == expected_steps
    assert result.status == "done"


def test_eos_ends_the_request_and_pads_the_rest(checkpoint):
    spec = TinySpec(confident_token=1)  # the model is certain of <eos> everywhere
    native = load_checkpoint(checkpoint(spec))
    (result,) = generate(native.model, [Request(prompt_of(9), seed=4, max_new_tokens=48)], native.generation)
    assert result.token_ids == [1] + [0] * (spec.canvas_length - 1)
    assert result.steps == [2]  # stable and confident on the second pass


def test_multi_canvas_output_covers_whole_canvases(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec(confident_token=40)))
    (result,) = generate(native.model, [Request(prompt_of(5), max_new_tokens=33)], native.generation)
    assert result.token_ids == [40] * 48  # ceil(33 / 16) canvases, returned whole as transformers does
    assert result.steps == [2, 2, 2]


@pytest.mark.parametrize("rng", ["native", "reference"])
def test_a_batch_gives_each_request_its_result_alone(checkpoint, rng):
    native = load_checkpoint(checkpoint(TinySpec()))
    requests = [
        Request(prompt_of(3), seed=5, max_new_tokens=16, max_denoising_steps=6),
        Request(prompt_of(21), seed=6, max_new_tokens=40, max_denoising_steps=4),  # longer than the window
        Request(prompt_of(12, offset=50), seed=7, max_new_tokens=32, max_denoising_steps=9),
    ]
    together = generate(native.model, requests, native.generation, rng=rng)
    for request, result in zip(requests, together, strict=False):
        (alone,) = generate(native.model, [request], native.generation, rng=rng)
        assert (result.token_ids, result.steps) == (alone.token_ids, alone.steps)
    assert [len(r.steps) for r in together] == [1, 3, 2]


@pytest.mark.parametrize("rng", ["native", "reference"])
def test_same_seed_same_output_other_seed_other_output(checkpoint, rng):
    native = load_checkpoint(checkpoint(TinySpec()))

    def run(seed):
        return generate(native.model, [Request(prompt_of(8), seed=seed)], native.generation, rng=rng)[0].token_ids

    first = run(1)
    assert run(1) == first
    assert run(2) != first


def test_snapshots_stream_every_step(checkpoint):
    spec = TinySpec()
    native = load_checkpoint(checkpoint(spec))
    requests = [Request(prompt_of(6), seed=1, max_new_tokens=32, max_denoising_steps=3),
                Request(prompt_of(9), seed=2, max_new_tokens=16, max_denoising_steps=5)]
    stream = generate_stream(native.model, requests, native.generation)
    snapshots = []
    with pytest.raises(StopIteration) as stop:
        while True:
            snapshots.append(next(stream))
    results = stop.value.value
    assert len(snapshots) == 6  # row 0: 3 + 3 passes, row 1: 5
    assert [s.step for s in snapshots] == [[1, 1], [2, 2], [3, 3], [1, 4], [2, 5], [3, 5]]
    assert [s.canvas_index for s in snapshots] == [[0, 0]] * 3 + [[1, 0]] * 3
    assert [s.stopped for s in snapshots] == [[False, False]] * 2 + [[True, False], [False, False],
                                                                       [False, True], [True, False]]
    assert [s.finished for s in snapshots][-2:] == [[False, True], [True, True]]
    assert all(s.max_steps == [3, 5] for s in snapshots)
    last = snapshots[-1]
    assert last.canvas.shape == last.entropy.shape == last.accepted.shape == (2, spec.canvas_length)
    assert all(s.accepted[row].any() for s in snapshots for row in range(2))  # >= 1 accepted per pass
    assert last.canvas[0].tolist() == results[0].token_ids[16:]  # the streamed argmax is what commits
    eos = torch.tensor(native.generation.eos_token_ids)
    committed, _ = pad_after_eos(snapshots[4].canvas[1:2], eos, native.args.pad_token_id)  # as close_canvases does
    assert committed[0].tolist() == results[1].token_ids


def test_cancellation_takes_effect_between_steps(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec()))
    seen = []
    results = generate(native.model, [Request(prompt_of(5), seed=1)], native.generation,
                       cancel=lambda: len(seen) >= 3, on_step=seen.append)
    assert len(seen) == 3
    assert results[0].status == "cancelled" and results[0].token_ids == []


def test_a_cancelled_request_leaves_its_batch_mates_untouched(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec()))
    steps, cancellation = [], Cancellation()

    def on_step(step) -> None:  # the fifth step cancels `drop`: read before the next one
        steps.append(step)
        if len(steps) >= 5:
            cancellation.set()

    keep = Request(prompt_of(7), seed=3, max_new_tokens=32, max_denoising_steps=4)
    drop = Request(prompt_of(11), seed=4, max_new_tokens=32, max_denoising_steps=4, cancellation=cancellation)
    kept, dropped = generate(native.model, [keep, drop], native.generation, on_step=on_step)
    assert dropped.status == "cancelled" and dropped.steps == [4]  # its first canvas finished before the cancel
    (alone,) = generate(native.model, [keep], native.generation)
    assert (kept.token_ids, kept.status) == (alone.token_ids, "done")


def test_requests_too_long_for_the_context_are_refused(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec()))  # context 512, canvas 16
    message = r"prompt of 490 tokens \+ 2 canvas\(es\) of 16 = 522 tokens exceeds"
    with pytest.raises(ContextTooLongError, match=message):
        generate(native.model, [Request(prompt_of(490), max_new_tokens=17)], native.generation)
    (fits,) = generate(native.model, [Request(prompt_of(496), max_new_tokens=16, max_denoising_steps=2)],
                       native.generation)
    assert len(fits.token_ids) == 16


def test_bad_requests_are_refused(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec()))
    for request, message in [
        (Request([]), "the prompt is empty"),
        (Request([5, 320]), r"prompt ids must be in \[0, 320\)"),
        (Request([5], seed=-1), "seed must be in"),
        (Request([5], max_denoising_steps=0), "must be positive"),
    ]:
        with pytest.raises(RequestError, match=message):
            generate(native.model, [request], native.generation)


# --- passage-started canvases (Request.init_ids) ---------------------------------------------------------------


def copying_model(checkpoint, tokens: list[int]):
    """A fresh tiny model (its own copy: the weights are rewritten) that copies `tokens` and pad."""
    native = load_checkpoint(checkpoint(TinySpec()))
    make_copying(native.model, [*tokens, native.args.pad_token_id])
    return native


def test_start_canvases_starts_init_rows_from_their_slice_and_draws_no_noise_for_them():
    L, vocab = 16, 320
    init = list(range(100, 120))  # 20 tokens: canvas 0 whole, canvas 1 four and pad, canvas 2 noise
    short = [7, 8, 9]
    seeds = [11, 12, 13]
    state = new_state(GenerationArgs(), 3, L, [5, 5, 5], vocab, CPU, torch.float32)
    noise = make_noise("reference", seeds, vocab, L, CPU)
    inits = [init, None, short]
    start_canvases(state, noise, [0, 1, 2], [4, 4, 4], CPU, first=True, init_ids=inits, pad_id=0)
    assert state.canvas[0].tolist() == state.argmax[0].tolist() == init[:16]
    assert state.canvas[2].tolist() == short + [0] * 13
    fresh = make_noise("reference", seeds, vocab, L, CPU)
    assert state.canvas[1].tolist() == fresh.canvas([1], state.canvas_index)[0].tolist()
    # the init rows' generators drew nothing: their first sample is the one a fresh generator gives
    for row in (0, 2):
        assert torch.equal(noise.generators[row].get_state(), fresh.generators[row].get_state())
    start_canvases(state, noise, [0, 2], [20, 4, 20], CPU, init_ids=[init, short], pad_id=0)
    assert state.canvas_index.tolist() == [1, 0, 1]
    assert state.canvas[0].tolist() == init[16:] + [0] * 12
    assert state.canvas[2].tolist() == fresh.canvas([2], state.canvas_index)[0].tolist()  # past its init: noise
    start_canvases(state, noise, [0], [36, 4, 20], CPU, init_ids=[init], pad_id=0)
    assert state.canvas[0].tolist() == fresh.canvas([0], state.canvas_index)[0].tolist()
    assert state.canvas.shape == (3, L)  # the fixed shape a captured step reads


@pytest.mark.parametrize("rng", ["native", "reference"])
def test_a_copying_model_gives_back_the_canvases_it_started_from(checkpoint, rng):
    passage = prompt_of(40, offset=60)  # two whole canvases and part of a third
    init = [*passage, TURN_END_ID]
    native = copying_model(checkpoint, init)
    request = Request(prompt_of(9), seed=4, max_new_tokens=48, init_ids=init)
    (result,) = generate(native.model, [request], native.generation, rng=rng)
    assert result.token_ids == init + [0] * 7  # the end token ends it, pad after
    assert result.steps == [2, 2, 2]  # accepted as it stood: stable and certain at the second pass
    (from_noise,) = generate(native.model, [replace(request, init_ids=None)], native.generation, rng=rng)
    assert from_noise.token_ids[: len(passage)] != passage  # the start is what it copied


@pytest.mark.parametrize("rng", ["native", "reference"])
def test_a_batch_mixing_init_and_noise_rows_gives_each_its_result_alone(checkpoint, rng):
    native = load_checkpoint(checkpoint(TinySpec()))
    plain = [Request(prompt_of(3), seed=5, max_new_tokens=32, max_denoising_steps=6),
             Request(prompt_of(21), seed=6, max_new_tokens=40, max_denoising_steps=4)]
    started = [Request(prompt_of(12, offset=50), seed=7, max_new_tokens=48, max_denoising_steps=5,
                       init_ids=prompt_of(35, offset=90)),
               Request(prompt_of(6, offset=20), seed=8, max_new_tokens=16, max_denoising_steps=3, init_ids=[77] * 9)]
    requests = [plain[0], started[0], plain[1], started[1]]
    together = generate(native.model, requests, native.generation, rng=rng)
    for request, result in zip(requests, together, strict=True):
        (alone,) = generate(native.model, [request], native.generation, rng=rng)
        assert (result.token_ids, result.steps) == (alone.token_ids, alone.steps)
    # the noise rows are what they are in a batch of noise rows alone
    assert [r.token_ids for r in generate(native.model, plain, native.generation, rng=rng)] == [
        together[0].token_ids, together[2].token_ids]
    (from_noise,) = generate(native.model, [replace(started[0], init_ids=None)], native.generation, rng=rng)
    assert from_noise.token_ids != together[1].token_ids


def test_bad_init_ids_are_refused(checkpoint):
    native = load_checkpoint(checkpoint(TinySpec()))  # vocab 320, canvas 16
    for init, message in [
        ([5] * 17, "init_ids has 17 tokens, more than the 16 of the requested canvases"),
        ([5, 320], r"init_ids must be in \[0, 320\)"),
        ([], "init_ids must be a non-empty list"),
    ]:
        with pytest.raises(RequestError, match=message):
            generate(native.model, [Request([5], max_new_tokens=16, init_ids=init)], native.generation)


def test_an_init_rows_undecided_positions_go_back_to_the_passage_not_to_noise(checkpoint, monkeypatch):
    """A random tiny model is unsure everywhere: each step accepts a few positions. The rest of a passage-started
    canvas shows the passage again (an edit leaves what it has not decided as it stands); a noise row's rest
    is fresh noise."""
    native = load_checkpoint(checkpoint(TinySpec()))  # canvas 16
    passage = prompt_of(16, offset=40)
    seen = []
    original = generate_module.advance

    def recording(state, *args):
        stopped = original(state, *args)
        seen.append((state.canvas.clone(), state.accepted.clone()))
        return stopped

    monkeypatch.setattr(generate_module, "advance", recording)
    requests = [Request(prompt_of(5), seed=3, max_new_tokens=16, max_denoising_steps=6, init_ids=passage),
                Request(prompt_of(5), seed=3, max_new_tokens=16, max_denoising_steps=6)]
    generate(native.model, requests, native.generation)
    assert len(seen) >= 3
    start = torch.tensor(passage)
    for canvas, accepted in seen:
        assert not accepted[0].all()  # some positions undecided each step
        assert torch.equal(canvas[0][~accepted[0]], start[~accepted[0]])
        assert not torch.equal(canvas[1][~accepted[1]], start[~accepted[1]])


def test_an_unsure_edit_keeps_the_passages_token_with_an_edit_entropy_bound(checkpoint):
    """A random tiny model's argmax differs from the passage almost everywhere, and it is unsure everywhere:
    with a bound below its entropy every position keeps the passage's token; without one the argmax goes in."""
    native = load_checkpoint(checkpoint(TinySpec()))  # canvas 16
    passage = prompt_of(16, offset=40)
    request = Request(prompt_of(5), seed=3, max_new_tokens=16, max_denoising_steps=4, init_ids=passage)
    (free,) = generate(native.model, [request], native.generation)
    (kept,) = generate(native.model, [request], native.generation.replace(edit_entropy_bound=0.01))
    assert kept.token_ids == passage
    assert free.token_ids != passage
    (noise_row,) = generate(native.model, [replace(request, init_ids=None)],
                            native.generation.replace(edit_entropy_bound=0.01))
    assert noise_row.token_ids != passage  # a canvas from noise has no passage to keep


# --- a fix's choices (Request.choices) ----------------------------------------------------------------------------


def test_start_canvases_starts_choice_slots_from_noise_and_the_rest_from_the_passage():
    L, vocab = 16, 320
    passage = list(range(100, 120))  # canvas 0: 16 tokens, canvas 1: 4 and pad
    choices = (SlotChoice(3, ((103, 104), (7, 0)), (0.0, 0.0)),  # slots 3-4 of canvas 0
               SlotChoice(15, ((115, 116), (7, 8)), (0.0, 0.0)),  # across the canvas boundary: never a choice
               SlotChoice(17, ((117,), (9,)), (0.0, 0.0)))  # slot 1 of canvas 1
    state = new_state(GenerationArgs(), 2, L, [5, 5], vocab, CPU, torch.float32)
    noise = make_noise("reference", [11, 12], vocab, L, CPU)
    start_canvases(state, noise, [0, 1], [4, 4], CPU, first=True, init_ids=[passage, passage], pad_id=0,
                   choices=[choices, None])
    fresh = make_noise("reference", [11, 12], vocab, L, CPU).canvas([0], state.canvas_index)[0]
    masked = torch.zeros(L, dtype=torch.bool)
    masked[3:5] = True
    assert torch.equal(state.canvas[0], torch.where(masked, fresh, torch.tensor(passage[:16])))
    assert state.start[0].tolist() == passage[:16]  # the passage, under the noise too
    assert torch.equal(state.from_start[0], ~masked)
    assert state.canvas[1].tolist() == passage[:16] and bool(state.from_start[1].all())  # no choices: as before
    start_canvases(state, noise, [0], [20, 4], CPU, init_ids=[passage], pad_id=0, choices=[choices])
    assert state.from_start[0].tolist() == [True, False] + [True] * 14  # canvas 1: slot 17 only


def test_a_choice_row_commits_its_passage_and_in_each_slot_the_option_with_the_best_prior(checkpoint):
    """A random tiny model writes noise everywhere and is unsure between options: the passage stays wherever
    there is no choice, and in a choice's slots an overwhelming prior decides."""
    native = load_checkpoint(checkpoint(TinySpec()))  # canvas 16
    passage = prompt_of(16, offset=40)
    options = (tuple(passage[2:5]), (9, 10, 0), (11, 0, 0))
    request = Request(prompt_of(5), seed=3, max_new_tokens=16, max_denoising_steps=4, init_ids=passage)
    (free,) = generate(native.model, [request], native.generation)
    assert free.token_ids != passage  # without choices the random model's argmax goes in
    for best in range(3):
        priors = tuple(1000.0 if i == best else 0.0 for i in range(3))
        choice = replace(request, choices=(SlotChoice(2, options, priors),))
        (result,) = generate(native.model, [choice], native.generation)
        assert result.token_ids == passage[:2] + list(options[best]) + passage[5:]
    (none,) = generate(native.model, [replace(request, choices=())], native.generation)
    assert none.token_ids == passage  # choices, but none: nothing changes


def test_the_models_scores_decide_a_choice_of_equal_priors(checkpoint):
    """A model certain of token 40 everywhere: of options with the same prior, the one that is all 40 wins,
    in every canvas, whichever option comes first."""
    native = load_checkpoint(checkpoint(TinySpec(confident_token=40)))  # canvas 16
    passage = prompt_of(30, offset=60)
    request = Request(prompt_of(5), seed=3, max_new_tokens=32, max_denoising_steps=4, init_ids=passage)
    choices = (SlotChoice(4, ((40, 40), tuple(passage[4:6]), (40, 0)), (0.0,) * 3),
               SlotChoice(20, (tuple(passage[20:23]), (40, 41, 40), (40, 40, 40)), (0.0,) * 3))
    (result,) = generate(native.model, [replace(request, choices=choices)], native.generation)
    expected = passage[:4] + [40, 40] + passage[6:20] + [40, 40, 40] + passage[23:]
    assert result.token_ids == expected + [0] * 2


def test_a_choice_rows_steps_show_its_passage_settled_outside_the_choices(checkpoint):
    """What collaborators watch: a random model's argmax is noise everywhere, but a row with choices shows its
    passage, certain, outside their slots, as it will commit it; only the slots resolve."""
    native = load_checkpoint(checkpoint(TinySpec()))  # canvas 16
    passage = prompt_of(16, offset=40)
    free = Request(prompt_of(5), seed=3, max_new_tokens=16, max_denoising_steps=4, init_ids=passage)
    fixing = replace(free, choices=(SlotChoice(6, (tuple(passage[6:8]), (9, 0)), (0.0, 0.0)),))
    snapshots = []
    generate(native.model, [fixing, free], native.generation, on_step=snapshots.append)
    slots = torch.zeros(16, dtype=torch.bool)
    slots[6:8] = True
    for snapshot in snapshots:
        assert snapshot.canvas[0][~slots].tolist() == [t for t, s in zip(passage, slots.tolist()) if not s]
        assert bool((snapshot.entropy[0][~slots] == 0).all()) and bool((snapshot.entropy[0][slots] > 0).all())
        assert snapshot.canvas[1].tolist() != passage  # no choices: the model's argmax, as before
