"""Corruptions whose inverse is a task: slips, doubled words, asides, and the aligned canvases they make."""

from __future__ import annotations

import random

import pytest

from engine.text.tokenizer import bpe_tokenizer
from training.corruption import (
    FILLERS,
    aligned_canvases,
    clean_text,
    fix_pairs,
    misspell_words,
    shorten_pairs,
    shown_text,
    typo,
)

TEXTS = [
    "The committee met on Tuesday (after a short delay) to review the budget, which had grown again, and agreed "
    "to cut travel costs.",
    "Please send the signed forms to the office by Friday. The new schedule starts next week.",
    "Heavy rain is expected in the north tonight, with strong winds along the coast.",
] * 20
END, PAD = 6, 0


@pytest.fixture(scope="module")
def tokenizer():
    return bpe_tokenizer(TEXTS, 400)


def test_a_typo_changes_one_word_by_one_slip_and_keeps_its_punctuation():
    rng = random.Random(0)
    for _ in range(200):
        slipped = typo("budget,", rng)
        assert slipped != "budget," and slipped.endswith(",")
        core = slipped[:-1]
        # swap and case keep the length, drop and double change it by one letter
        assert abs(len(core) - len("budget")) <= 1
        assert sorted(core.lower()) == sorted("budget") or abs(len(core) - 6) == 1 or core.lower() == "budget"
    assert typo("to", rng) == "to" and typo("(a)", rng) == "(a)"  # under three letters: nothing to slip


def test_misspell_words_keeps_the_count_and_follows_the_rate_and_seed():
    words = TEXTS[0].split() * 10
    shown = misspell_words(words, random.Random(1), 0.3)
    assert len(shown) == len(words)
    changed = sum(a != b for a, b in zip(shown, words))
    slippable = sum(sum(c.isalpha() for c in w) >= 3 for w in words)
    assert 0.2 * slippable < changed < 0.4 * slippable
    assert shown == misspell_words(words, random.Random(1), 0.3)
    assert misspell_words(words, random.Random(1), 0.0) == words


def test_fix_pairs_restore_the_clean_text():
    words = TEXTS[1].split()
    pairs = fix_pairs(words, random.Random(3), typo_rate=0.5, double_rate=0.3)
    assert clean_text(pairs) == TEXTS[1]
    assert shown_text(pairs) != TEXTS[1]
    assert any(clean == "" for _, clean in pairs)  # a doubled word, deleted


def test_shorten_drops_asides_and_clauses_and_keeps_the_sentence_end():
    pairs = shorten_pairs(TEXTS[0].split(), random.Random(0))
    assert shown_text(pairs) == TEXTS[0]
    assert clean_text(pairs) == "The committee met on Tuesday to review the budget and agreed to cut travel costs."
    aside_at_end = shorten_pairs("It rained (as forecast).".split(), random.Random(0))
    assert clean_text(aside_at_end) == "It rained."


def test_shorten_inserts_a_filler_where_there_is_nothing_to_drop():
    words = TEXTS[2].split()
    pairs = shorten_pairs(words, random.Random(5))
    assert clean_text(pairs) == TEXTS[2]
    inserted = [shown for shown, clean in pairs if not clean]
    assert inserted and set(inserted) <= set(FILLERS)


def test_aligned_canvases_keep_each_edit_in_its_words_slots(tokenizer):
    pairs = fix_pairs(TEXTS[0].split(), random.Random(2), typo_rate=0.3, double_rate=0.1)
    source, target = aligned_canvases(tokenizer, pairs, 64, END, PAD)
    assert len(source) == len(target) == 64
    shown_ids = tokenizer.encode(shown_text(pairs), add_special_tokens=False)
    assert source[: len(shown_ids)] == shown_ids and source[len(shown_ids)] == END  # what inference starts from
    assert target.index(END) == len(shown_ids)  # same length: edits stay in place
    assert tokenizer.decode(target, skip_special_tokens=True) == clean_text(pairs)  # pad slots decode to nothing
    assert set(source[len(shown_ids) + 1 :]) == set(target[len(shown_ids) + 1 :]) == {PAD}


def test_aligned_canvases_refuse_what_does_not_fit(tokenizer):
    pairs = [(word, word) for word in TEXTS[0].split()]
    assert aligned_canvases(tokenizer, pairs, 8, END, PAD) is None  # longer than the canvas
    assert aligned_canvases(tokenizer, [("a", "committee")], 64, END, PAD) is None  # the edit needs more slots
