"""Redrafts as text (engine/runtime/redrafts.py): no U+FFFD from a character cut mid-way, progress over canvases, the
spec's task and the canvases a passage model starts from its passage."""

from __future__ import annotations

import math
from types import SimpleNamespace

import anyio
import pytest

from engine.runtime import redrafts
from engine.text.slots import SlotChoice
from engine.text.spelling import Lexicon
from engine.text.tokenizer import NUM_BYTE_TOKENS, SPECIALS, TURN_END_ID, byte_tokenizer
from jobs.tasks import TASKS, ModelTasks
from tests.engine.copying import make_copying
from tests.engine.tiny import TinySpec

EOS = SPECIALS.index("<eos>")


def ids(data: bytes) -> list[int]:
    """Byte-level token ids of raw bytes (one token a byte)."""
    return [len(SPECIALS) + b for b in data]


def decoder() -> redrafts.TextDecoder:
    return redrafts.TextDecoder(byte_tokenizer(len(SPECIALS) + NUM_BYTE_TOKENS + 9), (EOS,))


def test_a_character_cut_by_the_end_of_the_output_is_dropped_not_replaced():
    text = decoder()
    cut = ids("déjà vu 😀".encode())[:-2]  # the emoji's last two bytes never came
    assert text.text(cut) == "déjà vu "
    assert text.text(ids("ok ".encode()) + ids("é".encode())[:1] + [EOS] + ids(b"after")) == "ok "
    assert text.text(ids(b"a\xff\xfeb")) == "ab"  # bytes that are no UTF-8 at all


def test_pieces_give_a_split_character_whole_to_its_last_token():
    text = decoder()
    assert text.pieces(ids("a😀b".encode())) == ["a", "", "", "", "😀", "b"]
    assert text.pieces(ids("é".encode())[:1]) == [""]  # still waiting for its second byte


def snapshot(canvas_index: int, step: int, tokens: list[int], max_steps: int = 4):
    return SimpleNamespace(step=step, max_steps=max_steps, canvas_index=canvas_index, token_ids=tokens,
                           entropy=[0.0] * len(tokens), stopped=step == max_steps, finished=False)


def test_progress_shows_the_whole_text_and_only_goes_up_across_canvases():
    text = decoder()
    first = ids("Hello wor".encode()) + ids("😀".encode())[:2]  # the canvas ends inside the emoji
    second = ids("😀".encode())[2:] + ids(b"ld")
    seen = [redrafts.progress(snapshot(0, step, first), [], text, num_canvases=3) for step in (1, 4)]
    seen += [redrafts.progress(snapshot(1, step, second), first, text, num_canvases=3) for step in (1, 2)]
    assert [p["progress"] for p in seen] == [{"step": s, "max_steps": 12} for s in (1, 4, 5, 6)]
    last = seen[-1]
    assert last["text"] == "Hello wor😀ld"
    # The earlier canvas as one sure piece, then this canvas: the emoji lands whole on its last byte.
    assert last["tokens"] == [["Hello wor", 1.0], ["", 1.0], ["😀", 1.0], ["l", 1.0], ["d", 1.0]]
    assert "\ufffd" not in "".join(piece for piece, _ in seen[0]["tokens"])


def test_the_step_that_stops_a_canvas_commits_it_once():
    text = decoder()
    first, second = ids(b"Hello "), ids(b"world")
    running = redrafts.progress(snapshot(0, 2, first), [], text, num_canvases=2)
    stopped = redrafts.progress(snapshot(0, 4, first), [], text, num_canvases=2)
    after = redrafts.progress(snapshot(1, 1, second), first, text, num_canvases=2)
    assert (running["text"], running["committed"]) == ("Hello ", "")
    assert (stopped["text"], stopped["committed"]) == ("Hello ", "Hello ")
    assert (after["text"], after["committed"]) == ("Hello world", "Hello ")


def test_stop_strings_cut_the_text_and_what_a_stream_may_send_ends_before_any_begun():
    limit = redrafts.OutputLimit(stop=("END", "\n\n"))
    assert limit.final("one\n\ntwo END") == ("one", True)
    assert limit.final("no stop here") == ("no stop here", False)
    assert limit.settled("one two E") == "one two "  # "E" may become "END"
    assert limit.settled("one two\n") == "one two"
    assert limit.settled("one EN two") == "one EN two"  # an "EN" followed by more is not a stop
    # The earliest stop wins even when a later-listed one starts first.
    assert redrafts.OutputLimit(stop=("c", "abcd")).settled("xxabc") == "xx"
    assert redrafts.OutputLimit(stop=("c", "abcd")).final("xxabcd") == ("xx", True)


def test_outcome_cuts_at_max_tokens_and_stop_and_says_why_it_ended():
    text = decoder()
    result = SimpleNamespace(token_ids=ids(b"alpha beta") + [EOS, 0, 0], steps=[3], status="done")
    ended = redrafts.outcome(result, text, {}, prompt_tokens=7)
    assert {k: ended[k] for k in ("text", "tokens", "complete", "finish_reason", "prompt_tokens")} == {
        "text": "alpha beta", "tokens": 10, "complete": True, "finish_reason": "stop", "prompt_tokens": 7}
    cut = redrafts.outcome(result, text, {}, 7, redrafts.OutputLimit(max_tokens=4))
    assert (cut["text"], cut["tokens"], cut["finish_reason"]) == ("alph", 4, "length")
    stopped = redrafts.outcome(result, text, {}, 7, redrafts.OutputLimit(stop=(" b",)))
    assert (stopped["text"], stopped["tokens"], stopped["finish_reason"]) == ("alpha", 5, "stop")
    # A character of several byte tokens counts all its tokens.
    emoji = SimpleNamespace(token_ids=ids("😀!".encode()), steps=[1], status="done")
    assert redrafts.outcome(emoji, text, {}, 0, redrafts.OutputLimit(stop=("!",)))["tokens"] == 4


def test_max_tokens_cuts_what_progress_commits():
    text = decoder()
    limit = redrafts.OutputLimit(max_tokens=7, stop=("x",))
    first, second = ids(b"abcd"), ids(b"efgh")
    seen = redrafts.progress(snapshot(1, 4, second), first, text, num_canvases=2, limit=limit)
    assert seen["committed"] == "abcdefg"
    assert seen["text"] == "abcdefgh"  # the preview is the model's canvas as it stands


def tokenizer_args(max_context: int = 64):
    args = SimpleNamespace(canvas_length=8, max_context=max_context, pad_token_id=0)
    return byte_tokenizer(len(SPECIALS) + NUM_BYTE_TOKENS + 9), args


def test_chat_and_complete_specs_build_their_prompts_and_reserve_whole_canvases_for_max_tokens():
    tokenizer, args = tokenizer_args()
    chat = redrafts.RedraftSpec.from_dict({"id": "c", "kind": "chat", "max_tokens": 9, "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]})
    request = redrafts.build_request(chat, tokenizer, args, max_len=4096)
    expected = tokenizer.encode("<bos><|turn>system\nS<turn|>\n<|turn>user\nhi<turn|>\n<|turn>model\n",
                                add_special_tokens=False)
    assert request.prompt_ids == expected and request.max_new_tokens == 16
    complete = redrafts.RedraftSpec.from_dict({"id": "p", "kind": "complete", "prompt": "ab"})
    request = redrafts.build_request(complete, tokenizer, args, max_len=4096)
    assert request.prompt_ids == [SPECIALS.index("<bos>"), *ids(b"ab")] and request.max_new_tokens == 8


def test_an_api_prompt_that_does_not_fit_is_refused_not_trimmed():
    tokenizer, args = tokenizer_args(max_context=32)
    spec = redrafts.RedraftSpec.from_dict({"id": "p", "kind": "complete", "prompt": "x" * 20, "max_tokens": 16})
    with pytest.raises(redrafts.RequestError, match="the prompt is 21 tokens; with 16 tokens of output"):
        redrafts.build_request(spec, tokenizer, args, max_len=4096)


@pytest.mark.parametrize("fields, message", [
    ({"kind": "chat"}, "a chat needs messages"),
    ({"kind": "chat", "messages": [{"role": "tool", "content": "x"}]}, r"messages\[0\].role must be one of"),
    ({"kind": "chat", "messages": [{"role": "user", "content": ["x"]}]}, r"messages\[0\].content must be text"),
    ({"kind": "chat", "messages": [{"role": "user"}]}, r"messages\[0\] must be an object with exactly"),
    ({"kind": "complete", "prompt": 3}, "prompt must be text"),
    ({"kind": "complete", "max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"kind": "complete", "stop": ["a", "b", "c", "d", "e"]}, "stop must be a list of at most 4"),
    ({"kind": "complete", "stop": [""]}, "each stop string must be non-empty"),
    ({"kind": "translate"}, "kind must be one of rewrite, fill, continue, chat, complete"),
])
def test_bad_api_specs_are_refused_with_the_field_named(fields, message):
    with pytest.raises(redrafts.RequestError, match=message):
        redrafts.RedraftSpec.from_dict({"id": "x", **fields})


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_engine_commits_each_canvas_once_and_cuts_the_result_at_max_tokens(checkpoint):
    from engine.api import Engine, EngineConfig

    letter = ids(b"a")[0]  # a model near-certain of "a" everywhere: no EOS, so every canvas is written
    engine = await Engine.load(EngineConfig(model=str(checkpoint(TinySpec(confident_token=letter))), device="cpu"))
    try:
        with anyio.fail_after(60):
            generation = engine.redraft({"id": "x", "kind": "complete", "prompt": "say a", "max_tokens": 40})
            seen = [(p["canvas_index"], p["stopped"], p["text"], p["committed"]) async for p in generation]
            result = await generation.result()
    finally:
        await engine.close()
    canvas = TinySpec().canvas_length  # 16: three canvases hold 40 tokens
    stops = [(index, text, committed) for index, stopped, text, committed in seen if stopped]
    assert stops == [(0, "a" * canvas, "a" * canvas), (1, "a" * 2 * canvas, "a" * 2 * canvas),
                     (2, "a" * 3 * canvas, "a" * 40)]
    assert {k: result[k] for k in ("text", "tokens", "finish_reason", "prompt_tokens")} == {
        "text": "a" * 40, "tokens": 40, "finish_reason": "length", "prompt_tokens": len("say a") + 1}


@pytest.mark.anyio
async def test_a_stop_string_in_a_decided_canvas_spares_the_canvases_after_it(checkpoint):
    from engine.api import Engine, EngineConfig

    letter = ids(b"a")[0]
    engine = await Engine.load(EngineConfig(model=str(checkpoint(TinySpec(confident_token=letter))), device="cpu"))
    try:
        with anyio.fail_after(60):
            # Three canvases of 16 reserved; "a" * 20 first shows in the second.
            generation = engine.redraft({"id": "x", "kind": "complete", "prompt": "a", "max_tokens": 48,
                                         "stop": ["a" * 20]})
            committed = [p["committed"] async for p in generation]
            result = await generation.result()
    finally:
        await engine.close()
    assert set(committed) == {""}  # the stop string's start is held back until it turns out to be one
    assert (result["status"], result["text"], result["finish_reason"], len(result["steps"])) == ("done", "", "stop", 2)


# --- tasks and passage-started canvases ------------------------------------------------------------------

PASSAGE_MODEL = ModelTasks(("fix", "shorten", "continue", "fill"), "passage", "A small model.")


def spec_of(**fields) -> redrafts.RedraftSpec:
    return redrafts.RedraftSpec.from_dict({"id": "t", **fields})


@pytest.mark.parametrize("fields, task", [
    ({"kind": "rewrite", "passage": "p"}, "rewrite"),
    ({"kind": "rewrite", "passage": "p", "instruction": "Make it formal."}, "instruct"),
    ({"kind": "rewrite", "passage": "p", "instruction": "  "}, "rewrite"),
    ({"kind": "fill"}, "fill"),
    ({"kind": "continue"}, "continue"),
    ({"kind": "rewrite", "passage": "p", "task": "fix"}, "fix"),
    ({"kind": "complete", "prompt": "p"}, ""),
])
def test_a_spec_names_its_task_or_takes_the_one_its_kind_and_instruction_imply(fields, task):
    spec = spec_of(**fields)
    assert spec.task == task
    assert redrafts.RedraftSpec.from_dict(spec.to_dict()) == spec  # as the worker reads the job back


@pytest.mark.parametrize("fields, message", [
    ({"kind": "rewrite", "task": "polish"}, "task must be one of rewrite, shorten, expand, fix, instruct, continue, fill"),
    ({"kind": "fill", "task": "fix"}, "task fix is a rewrite, not a fill"),
    ({"kind": "rewrite", "task": "continue"}, "task continue is a continue, not a rewrite"),
    ({"kind": "rewrite", "task": 3}, "task must be text"),
    ({"kind": "chat", "messages": [{"role": "user", "content": "x"}], "task": "fix"}, "a chat request has no task"),
])
def test_bad_tasks_are_refused(fields, message):
    with pytest.raises(redrafts.RequestError, match=message):
        spec_of(**fields)


def prompt_text(request, tokenizer) -> str:
    return tokenizer.decode(request.prompt_ids)


def test_the_prompt_carries_the_tasks_instruction_or_the_persons_own():
    tokenizer, args = tokenizer_args(max_context=1024)
    fix = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage="Teh cat.", instruction="ignored"),
                                 tokenizer, args, 4096)
    assert TASKS["fix"][1] in prompt_text(fix, tokenizer) and "ignored" not in prompt_text(fix, tokenizer)
    own = redrafts.build_request(spec_of(kind="rewrite", passage="The cat.", instruction="Make it a dog."),
                                 tokenizer, args, 4096)
    assert "Make it a dog." in prompt_text(own, tokenizer)
    # a spec built directly (no from_dict) gets its task the same way
    direct = redrafts.RedraftSpec("d", "rewrite", passage="The cat.")
    assert redrafts.build_request(direct, tokenizer, args, 4096).prompt_ids == redrafts.build_request(
        spec_of(kind="rewrite", passage="The cat."), tokenizer, args, 4096).prompt_ids
    assert TASKS["rewrite"][1] in prompt_text(redrafts.build_request(direct, tokenizer, args, 4096), tokenizer)


@pytest.mark.parametrize("fields, what", [
    ({"kind": "rewrite", "passage": "p"}, "rewrite"),
    ({"kind": "rewrite", "passage": "p", "instruction": "Make it formal."}, "instruct"),
    ({"kind": "rewrite", "passage": "p", "task": "expand"}, "expand"),
])
def test_a_task_the_model_does_not_declare_is_refused(fields, what):
    tokenizer, args = tokenizer_args(max_context=1024)
    message = f"this model does not do the {what} task; it does: fix, shorten, continue, fill"
    with pytest.raises(redrafts.RequestError, match=message):
        redrafts.build_request(spec_of(**fields), tokenizer, args, 4096, PASSAGE_MODEL)
    redrafts.build_request(spec_of(**fields), tokenizer, args, 4096)  # a model without a declaration does all


def test_a_passage_model_starts_a_copy_tasks_canvases_from_the_passage_and_its_end():
    tokenizer, args = tokenizer_args(max_context=1024)  # canvas 8
    passage = "Teh cat sat."  # 12 tokens and <turn|>: two canvases, whatever the rewrite room would be
    request = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage=passage), tokenizer, args, 4096,
                                     PASSAGE_MODEL)
    assert request.init_ids == [*ids(passage.encode()), TURN_END_ID]
    assert request.max_new_tokens == 16
    shorten = redrafts.build_request(spec_of(kind="rewrite", task="shorten", passage=passage, max_canvases=1),
                                     tokenizer, args, 4096, PASSAGE_MODEL)
    assert shorten.init_ids == request.init_ids and shorten.max_new_tokens == 16  # the passage's canvases
    for spec, tasks in [
        (spec_of(kind="fill", before="a", after="b"), PASSAGE_MODEL),  # not a copy task
        (spec_of(kind="rewrite", task="fix", passage=passage), ModelTasks(canvas_init="noise")),
    ]:
        assert redrafts.build_request(spec, tokenizer, args, 4096, tasks).init_ids is None
    noise = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage=passage), tokenizer, args, 4096)
    assert noise.max_new_tokens == 24  # today's room: 1.5 x 12 tokens, in whole canvases


def test_a_passage_longer_than_the_canvases_is_refused_not_cut():
    tokenizer, args = tokenizer_args(max_context=1024)  # canvas 8: at most 4 x 8 - 1 passage tokens
    fits = spec_of(kind="rewrite", task="fix", passage="x" * 31)
    assert len(redrafts.build_request(fits, tokenizer, args, 4096, PASSAGE_MODEL).init_ids) == 32
    too_long = spec_of(kind="rewrite", task="fix", passage="x" * 32)
    with pytest.raises(redrafts.RequestError, match="the passage is 32 tokens; this model edits at most 31"):
        redrafts.build_request(too_long, tokenizer, args, 4096, PASSAGE_MODEL)
    with pytest.raises(redrafts.RequestError, match="the passage is 32 tokens; this model edits at most 31"):
        redrafts.build_request(too_long, tokenizer, args, 4096, PASSAGE_MODEL, Lexicon({"the": 1}))  # a fix too


@pytest.mark.anyio
async def test_the_engine_gives_a_copying_model_its_passage_back_and_refuses_undeclared_tasks(checkpoint):
    import dataclasses

    from engine.api import Engine, EngineConfig
    from engine.weights.checkpoint import load_checkpoint

    passage = "The cat sat on the mat, and then the dog sat on the cat's mat too."  # 67 tokens: 5 canvases of 16
    native = load_checkpoint(checkpoint(TinySpec()))
    make_copying(native.model, [*ids(passage.encode()), TURN_END_ID, native.args.pad_token_id])
    engine = Engine(dataclasses.replace(native, tasks=PASSAGE_MODEL), EngineConfig(max_batch=2, max_len=512))
    try:
        with pytest.raises(redrafts.RequestError, match="does not do the instruct task"):
            engine.redraft({"id": "a", "kind": "rewrite", "passage": passage, "instruction": "Shorter."})
        with anyio.fail_after(60):
            # seed 5: with seed 0 the native noise's first uniform (canvas 0, step 0, position 0) is exactly 0,
            # which draws token 0 (pad) however certain the model is
            generation = engine.redraft({"id": "f", "kind": "rewrite", "task": "fix", "passage": passage[:60],
                                         "seed": 5})
            seen = [p async for p in generation]
            result = await generation.result()
    finally:
        await engine.close()
    assert result["text"] == passage[:60] and result["finish_reason"] == "stop"
    assert result["steps"] == [2, 2, 2, 2]  # 61 ids: four canvases, each accepted as it started
    assert seen[0]["text"] == passage[:16]  # the first step already shows the passage


def test_a_passage_models_fix_with_a_lexicon_may_change_only_the_words_it_lacks():
    """With a lexicon the fix's request carries its choices (engine/text/slots.py) and at most
    MAX_CHOICE_STEPS; other tasks, and a model without one, edit as before."""
    tokenizer, args = tokenizer_args(max_context=1024)  # byte tokens: a word's slots are its bytes
    lexicon = Lexicon({"The": 5, "cat": 9, "sat": 4})
    fix = spec_of(kind="rewrite", task="fix", passage="Teh cat sat.", steps=24)
    request = redrafts.build_request(fix, tokenizer, args, 4096, PASSAGE_MODEL, lexicon)
    assert request.choices == (SlotChoice(0, (tuple(ids(b"Teh")), tuple(ids(b"The"))), (0.0, math.log1p(5))),)
    assert request.max_denoising_steps == redrafts.MAX_CHOICE_STEPS
    assert request.init_ids == [*ids(b"Teh cat sat."), TURN_END_ID]
    spaced = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage="Teh cat "), tokenizer, args, 4096,
                                    PASSAGE_MODEL, lexicon)  # a selection that ends in a space: still its words
    assert spaced.init_ids == [*ids(b"Teh cat "), TURN_END_ID] and spaced.choices == request.choices
    fewer = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage="Teh cat sat.", steps=4),
                                   tokenizer, args, 4096, PASSAGE_MODEL, lexicon)
    assert fewer.max_denoising_steps == 4
    clean = redrafts.build_request(spec_of(kind="rewrite", task="fix", passage="The cat sat."),
                                   tokenizer, args, 4096, PASSAGE_MODEL, lexicon)
    assert clean.choices == ()  # nothing to correct: the passage comes back as it is
    for spec, tasks, words in [
        (spec_of(kind="rewrite", task="shorten", passage="Teh cat sat.", steps=24), PASSAGE_MODEL, lexicon),
        (fix, PASSAGE_MODEL, None),
        (fix, ModelTasks(canvas_init="noise"), lexicon),  # no passage start: nothing to choose in
    ]:
        other = redrafts.build_request(spec, tokenizer, args, 4096, tasks, words)
        assert other.choices is None and other.max_denoising_steps == 24
