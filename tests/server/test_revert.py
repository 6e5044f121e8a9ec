"""Undo and redo of any redraft by text (server/redrafts/revert.py), and the seams of the model's text."""

from __future__ import annotations

import random

import pytest

from server.redrafts import merge, revert, seams


def apply(text: str, ops) -> str:
    for start, end, replacement in reversed(ops):
        text = text[:start] + replacement + text[end:]
    return text


def redraft(text: str, passage: str, result: str) -> revert.Change:
    """What the service keeps after merging `result` over `passage` (first occurrence)."""
    at = text.index(passage)
    return revert.changed(text, [(at + s, at + e, r) for s, e, r in merge.edits(passage, result)])


def take_back(change: revert.Change, now: str) -> revert.Change:
    """An undo (or redo): the inverse applied to the text now; returns the change it made."""
    moved = revert.rebase(change, now)
    assert isinstance(moved, revert.Change), moved
    return revert.changed(now, list(moved.inverse))


def test_the_diff_is_exact_and_leaves_unchanged_text_alone():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    alphabet = "ab c😀é.\n"
    for _ in range(1500):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert apply(old, revert.diff(old, new)) == new, seed
    # No folding: a one-letter edit between two others stays three edits, and spaces stay where they were.
    assert revert.diff("one two three four", "one TWO three FOUR") == [(4, 7, "TWO"), (14, 18, "FOUR")]
    assert revert.diff("para one\npara two\n", "para one\nGrace para two\n") == [(9, 9, "Grace ")]


START = "Intro. The quick brown fox jumps. Middle text here. The lazy dog sleeps now. Outro."


def test_an_older_redraft_is_undone_after_later_ones_and_others_typing_and_redone():
    text = START
    first = redraft(text, "The quick brown fox jumps.", "A swift red fox leaps high.")
    text = first.landed.replace("Middle", "Grace typed. Middle")  # someone types between the redrafts
    second = redraft(text, "The lazy dog sleeps now.", "A tired hound naps.")
    text = second.landed.replace("Outro", "Ada's outro")
    assert text == "Intro. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. Ada's outro."

    undo_first = take_back(first, text)  # the older one, with a later redraft and typing after it
    assert undo_first.landed == "Intro. The quick brown fox jumps. Grace typed. Middle text here. A tired hound naps. Ada's outro."
    text = undo_first.landed.replace("Intro", "Intro!")
    redo_first = take_back(undo_first, text)
    assert redo_first.landed == "Intro!. A swift red fox leaps high. Grace typed. Middle text here. A tired hound naps. Ada's outro."
    undo_second = take_back(second, redo_first.landed)
    assert undo_second.landed == "Intro!. A swift red fox leaps high. Grace typed. Middle text here. The lazy dog sleeps now. Ada's outro."


def test_a_later_redraft_over_the_same_words_blocks_until_it_is_undone():
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    later = redraft(first.landed, "A swift red fox leaps high.", "One swift red fox jumped high.")
    blocked = revert.rebase(first, later.landed)
    assert isinstance(blocked, revert.Touched) and blocked.num_words == 2  # "One" and "jumped" replaced its words
    # What the later redraft typed there (character-level: "leaps" -> "jumped" keeps the "e").
    assert "".join(later.landed[s:e] for s, e in blocked.inserted) == "Onejumpd"
    undone = take_back(later, later.landed)
    assert undone.landed == first.landed
    # yrs' UndoManager left "A" and "leaps" behind here; text positions have no such chain.
    assert take_back(first, undone.landed).landed == START


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda t: t.replace("swift red", "swift, very red"), 1),  # typed inside its text
        (lambda t: t.replace("swift red fox", "fox"), 2),  # deleted two of its words
        (lambda t: t.replace("leaps high", "leapt high"), 1),  # changed one letter of a word it wrote
    ],
)
def test_undo_is_refused_when_others_edited_the_words_it_wrote(edit, words):
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    touched = revert.rebase(first, edit(first.landed))
    assert isinstance(touched, revert.Touched) and touched.num_words == words
    # Typing right beside its words, or anywhere else, is no obstacle.
    beside = first.landed.replace("A swift", "Then A swift").replace("high.", "high. Really.")
    assert take_back(first, beside).landed == START.replace("The quick", "Then The quick").replace("jumps.", "jumps. Really.")


def test_redo_is_refused_when_others_edited_what_the_undo_put_back():
    first = redraft(START, "The quick brown fox jumps.", "A swift red fox leaps high.")
    undone = take_back(first, first.landed)
    touched = revert.rebase(undone, undone.landed.replace("quick brown", "quick XX brown"))
    assert isinstance(touched, revert.Touched) and touched.inserted and touched.num_words >= 1


def test_a_removal_whose_place_was_deleted_is_not_put_back():
    first = redraft(START, "The quick brown fox jumps.", "The fox jumps.")  # removes "quick brown "
    gone = first.landed.replace("Intro. The fox jumps.", "Intro.")
    touched = revert.rebase(first, gone)
    assert isinstance(touched, revert.Touched) and touched.is_context_gone


# --- seams -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, before, passage, after, model, merged",
    [
        # A rewrite keeps the passage's own surrounding whitespace, whatever the model put around its text.
        ("rewrite", "One.", "\n\nThe old one.  \n", "Two.", "  The new one.\n\n\n", "\n\nThe new one.  \n"),
        ("rewrite", "Say ", "hello", ", world", "hi ", "hi"),
        # continue after a sentence: a space, not "needed to be.The22"
        ("continue", "It was what it needed to be.", "", "", "The22 others came.", " The22 others came."),
        # fill after a word and before the next: "Their A, …", not "TheirA,"
        ("fill", "Their", "", " house stood.", "A,", " A,"),
        ("fill", "words ", "", "and more", " here ", "here "),
        ("fill", "the field", "", "Nobody in the town", "simple record.", " simple record. "),
        # the model starting a new paragraph keeps its newlines; punctuation and brackets join tight
        ("continue", "The end.", "", "", "\n\nA new part.", "\n\nA new part."),
        ("fill", "(", "", ")", "aside", "aside"),
        ("fill", "word", "", ".", "s", " s"),
    ],
)
def test_seams_join_with_the_spacing_a_person_would_write(kind, before, passage, after, model, merged):
    assert seams.frame(kind, passage, model, before, after) == merged


def test_clean_drops_what_is_not_text():
    cut = b"caf\xc3\xa9 na\xc3".decode("utf-8", errors="replace")  # a model output cut mid-character
    assert cut.endswith("\ufffd") and seams.clean(cut) == "café na"
    assert seams.clean("a\ud83db\x07c") == "abc"  # a lone surrogate (from JSON) and a control character
    assert seams.clean("keep \ufffd", passage="it had \ufffd") == "keep \ufffd"  # the passage's own stays
    with pytest.raises(ValueError, match="replacement character"):
        merge.merge_update(merge.Fork(b"", 0, 0, "", ""), "x\ufffd")


def test_an_answer_cut_by_the_budget_ends_at_its_last_sentence_or_word():
    assert seams.trim_unfinished("It rained all day long on us. Then the field was a simple reco") == "It rained all day long on us."
    # A sentence end too early to keep most of the answer: the last whole word instead.
    assert seams.trim_unfinished("It rained. Then the field was a simple reco") == "It rained. Then the field was a simple"
    assert seams.trim_unfinished("A long first sentence that goes on and on. Then it") == "A long first sentence that goes on and on."
    assert seams.trim_unfinished("No sentence end here but a cut wor") == "No sentence end here but a cut"
