"""Seams: a redraft's text joins the text around it as a person would write it, and nothing that is not text is
merged (server/redrafts/seams.py)."""

from __future__ import annotations

import pytest

from server.redrafts import merge, seams


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
