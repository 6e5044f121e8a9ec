"""engine/text/slots.py: a passage's words in its canvas's token slots, and a fix's choices there."""

from __future__ import annotations

import math

import pytest

from engine.text.slots import PRIOR_WEIGHT, slot_choices, word_slots
from engine.text.spelling import Lexicon
from engine.text.tokenizer import load_tokenizer
from engine.weights.checkpoint import SHIPPED_MODELS

PAD = 0


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(SHIPPED_MODELS["redraft-small"])


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("passage", [
    "Please send teh report, and chekc (the budegt).",
    "Two lines:\nthe first\n\n  and an indented second.",
    "A selection that ends in a space ",
    "Odd\u2028spaces\x1cand 😀 tabs\t here\u3000",  # what str.split() and the slots both call whitespace
])
def test_word_slots_cover_the_passage_word_by_word(tokenizer, passage):
    ids, slots = word_slots(tokenizer, passage)
    assert tokenizer.decode(ids) == passage
    assert len(slots) == len(passage.split())
    assert [start for _, start, _ in slots] == [sum(n for _, _, n in slots[:i]) for i in range(len(slots))]
    for (space, start, count), word in zip(slots, passage.split(), strict=True):
        assert ids[start : start + count] == encode(tokenizer, space + word)
    if not passage.endswith(" "):
        assert ids == encode(tokenizer, passage)  # for most text, the whole passage's ids themselves


def test_a_passage_the_tokenizer_merges_across_a_word_edge_starts_from_its_words_ids():
    class Merging:  # a tokenizer that merges across a space, as some BPEs do
        def encode(self, text, add_special_tokens=False):
            return [len(text)] if " " in text.strip() else [ord(c) for c in text]

    ids, choices = slot_choices(Merging(), "teh b", Lexicon({"the": 5}), PAD)
    assert ids == [ord(c) for c in "teh"] + [ord(" "), ord("b")]  # not the whole text's one id
    assert [choice.options for choice in choices] == [(tuple(map(ord, "teh")), tuple(map(ord, "the")))]


def test_choices_are_options_of_the_slot_length_with_priors(tokenizer):
    passage = "Please send teh report by Friday so that I can chekc the the numbers."
    lexicon = Lexicon({"the": 900, "check": 25})
    ids, choices = slot_choices(tokenizer, passage, lexicon, PAD)
    slots = word_slots(tokenizer, passage)[1]
    assert [choice.start for choice in choices] == [slots[i][1] for i in (2, 10, 12)]  # teh, chekc, the copy
    for choice in choices:
        assert all(len(option) == choice.length for option in choice.options)
        assert list(choice.options[0]) == ids[choice.start : choice.start + choice.length]  # as shown, first
    written = [[tokenizer.decode([t for t in option if t != PAD]) for option in c.options] for c in choices]
    assert written == [[" teh", " the"], [" chekc", " check"], [" the", ""]]
    assert [c.priors for c in choices] == [
        (0.0, PRIOR_WEIGHT * math.log1p(900)),
        (0.0, PRIOR_WEIGHT * math.log1p(25)),
        (PRIOR_WEIGHT * math.log1p(900),) * 2,  # a deletion: the model alone decides
    ]


def test_an_option_longer_than_its_slot_is_left_out(tokenizer):
    """" commitee" is two tokens and " committee" three: the model never learnt to grow a word into more
    slots, so that choice is none; " comittee" has the slots for it."""
    lexicon = Lexicon({"committee": 30})
    assert len(encode(tokenizer, " committee")) > len(encode(tokenizer, " commitee"))
    assert slot_choices(tokenizer, "The commitee met.", lexicon, PAD)[1] == ()
    (choice,) = slot_choices(tokenizer, "The comittee met.", lexicon, PAD)[1]
    assert [t for t in choice.options[1] if t != PAD] == encode(tokenizer, " committee")
