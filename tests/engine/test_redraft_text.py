"""Model output as text (engine/redrafts.py): no U+FFFD from a character cut mid-way, and progress over canvases."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import pytest

from engine import redrafts
from engine.tokenizer import NUM_BYTE_TOKENS, SPECIALS, byte_tokenizer
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
    return byte_tokenizer(len(SPECIALS) + NUM_BYTE_TOKENS + 9), SimpleNamespace(canvas_length=8, max_context=max_context)


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
