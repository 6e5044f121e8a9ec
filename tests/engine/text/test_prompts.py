"""Redraft prompts through the chat template, the context budget, and the byte tokenizer."""

from __future__ import annotations

import pytest

from engine.model.config import MODEL_PRESETS
from engine.text.prompts import (
    PromptTooLongError,
    RedraftPrompt,
    build_messages,
    encode_messages,
    encode_prompt,
    prompt_budget,
)
from engine.text.tokenizer import byte_tokenizer

TOKENIZER = byte_tokenizer(320)


def decoded(ids: list[int]) -> str:
    return TOKENIZER.decode(ids, skip_special_tokens=False)


def test_rewrite_prompt_carries_instruction_context_and_passage():
    prompt = RedraftPrompt("rewrite", passage="The cat sat.", instruction="Make it vivid.", before="Intro.",
                           after="Outro.")
    (message,) = build_messages(prompt)
    assert message["role"] == "user"
    text = message["content"]
    assert text.startswith("Rewrite the passage below. Make it vivid. Reply with the rewritten passage only.")
    assert text.index("Intro.") < text.index("Passage:\n<<<\nThe cat sat.\n>>>") < text.index("Outro.")


def test_each_kind_has_its_task_and_a_default_instruction():
    fill = build_messages(RedraftPrompt("fill", before="Dear Sam,", after="Best, Al"))[0]["content"]
    assert "goes at the cursor" in fill and "Text after the cursor:\n<<<\nBest, Al\n>>>" in fill
    assert "joins the text before and after" in fill  # the default instruction
    more = build_messages(RedraftPrompt("continue", before="Once upon a time"))[0]["content"]
    assert "Document so far:\n<<<\nOnce upon a time\n>>>" in more and "Reply with the continuation only." in more


def test_bad_requests_are_rejected():
    with pytest.raises(ValueError, match="kind must be one of"):
        RedraftPrompt("summarise", passage="x")
    with pytest.raises(ValueError, match="passage is required for a rewrite"):
        RedraftPrompt("rewrite", passage="  ")


def test_chat_template_wraps_one_user_turn_and_opens_the_model_turn():
    ids = encode_messages(TOKENIZER, [{"role": "user", "content": "Hi ü"}])
    assert decoded(ids) == "<bos><|turn>user\nHi ü<turn|>\n<|turn>model\n"
    assert ids[:2] == [2, 5]


def test_prompt_budget_leaves_room_for_whole_canvases():
    tiny = MODEL_PRESETS["tiny"]  # context 2048, canvas 32
    assert prompt_budget(tiny, 32) == 2016
    assert prompt_budget(tiny, 33) == 1984


def test_long_context_is_trimmed_keeping_the_text_nearest_the_passage():
    before = "".join(f"b{i:03d} " for i in range(200))
    after = "".join(f"a{i:03d} " for i in range(200))
    prompt = RedraftPrompt("rewrite", passage="Keep me whole.", before=before, after=after)
    full = encode_prompt(TOKENIZER, prompt, 10_000)
    ids = encode_prompt(TOKENIZER, prompt, 600)
    assert len(full) > 2000 and len(ids) == 600  # the byte tokenizer lets the budget be met exactly
    text = decoded(ids)
    assert "Keep me whole." in text
    assert "b199 \n>>>" in text and "<<<\na000 " in text  # nearest context kept
    assert "b000" not in text and "a199" not in text  # farthest context cut
    assert abs(text.count("b1") - text.count("a0")) <= 2  # the spare budget is shared evenly


def test_one_sided_context_gets_the_whole_budget():
    prompt = RedraftPrompt("continue", before="word " * 400)
    fixed = len(encode_prompt(TOKENIZER, RedraftPrompt("continue"), 10_000))
    ids = encode_prompt(TOKENIZER, prompt, 500)
    assert len(ids) == 500
    kept = decoded(ids).split("Document so far:\n<<<\n")[1].split("\n>>>")[0]
    assert len(kept) == 500 - fixed  # one token per byte: every spare token went to the text before


def test_a_passage_too_long_for_the_budget_is_refused():
    prompt = RedraftPrompt("rewrite", passage="x" * 300, before="context")
    with pytest.raises(PromptTooLongError, match=r"need \d+ prompt tokens, the budget is 200"):
        encode_prompt(TOKENIZER, prompt, 200)


def test_byte_tokenizer_round_trips_any_utf8_and_decodes_every_id():
    text = "Zoë's café — naïve résumé; 日本語; emoji 🎉🦀; tabs\tand\nnewlines; \x00 nul"
    ids = TOKENIZER.encode(text)
    assert ids[0] == 2 and TOKENIZER.decode(ids, skip_special_tokens=True) == text
    assert len(TOKENIZER) == 320
    assert [TOKENIZER.pad_token_id, TOKENIZER.eos_token_id, TOKENIZER.bos_token_id] == [0, 1, 2]
    assert TOKENIZER.convert_tokens_to_ids(["<|turn>", "<turn|>"]) == [5, 6]
    assert isinstance(TOKENIZER.decode(list(range(320)), skip_special_tokens=True), str)


def test_byte_tokenizer_needs_room_for_every_byte():
    with pytest.raises(ValueError, match="needs vocab_size >= 263"):
        byte_tokenizer(200)
