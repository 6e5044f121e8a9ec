"""engine/text/spelling.py: which words of a passage may be slips, and what each may have been."""

from __future__ import annotations

import random

import pytest

from engine.text.spelling import MAX_CANDIDATES, Lexicon, WordChoice
from training.corruption import SLIP_KINDS, _slip, typo

WORDS = {"the": 900, "report": 40, "review": 30, "spelling": 8, "spieling": 1, "check": 25, "Friday": 6,
         "from": 300, "form": 50, "send": 20, "had": 70, "that": 200, "budget": 9, "over": 80, "move": 12,
         "end": 40, "Monday": 5}


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon(dict(WORDS))


@pytest.mark.parametrize("kind", SLIP_KINDS)
def test_every_slip_the_training_makes_is_undone_by_a_candidate(lexicon, kind):
    """The candidates are the inverse of training/corruption.py's channel: whatever slip it makes of a known
    word, that word is among the candidates of the slipped one (unless the slip made another known word)."""
    rng = random.Random(kind)
    for word in (w for w in WORDS if len(w) >= 3):
        for _ in range(20):
            slipped = _slip(word, kind, rng)
            if slipped != word and not lexicon.knows(slipped):
                assert word in lexicon.candidates(slipped), (kind, word, slipped)


def test_known_words_and_words_without_neighbours_are_no_choice(lexicon):
    assert lexicon.choices("The report from Friday") == []  # "The" is "the" at a sentence's start
    assert lexicon.choices("Priya sent 42 kubectl") == []  # unknown, but no known word one slip away
    assert lexicon.choices("an ox") == []  # too short for a slip: training slips words of 3 letters or more


def test_candidates_most_frequent_first_and_only_known_words(lexicon):
    assert lexicon.candidates("speling") == ["spelling", "spieling"]
    assert lexicon.candidates("ove") == ["over", "move"]
    assert lexicon.candidates("fomr") == ["form"]  # "from" is two slips away
    assert lexicon.candidates("Teh") == ["The"]  # a sentence's start: counted as "the"
    assert lexicon.candidates("monday") == ["Monday"]  # a case slip, to a word known as written
    assert lexicon.candidates("nd") == ["end"]  # not "End": capitals only where the lexicon has them
    many = Lexicon({f"{letter}at": 1 for letter in "bcdefghmnoprstv"})
    assert len(many.candidates("at")) == MAX_CANDIDATES


def test_choices_keep_punctuation_and_offer_the_word_as_shown_first(lexicon):
    choices = lexicon.choices("Please send teh reprot, and chekc (the budegt).")
    assert choices == [
        WordChoice(2, ("teh", "the")),
        WordChoice(3, ("reprot,", "report,")),
        WordChoice(5, ("chekc", "check")),
        WordChoice(7, ("budegt).", "budget).")),
    ]


def test_a_word_shown_twice_may_lose_its_copy_but_not_where_english_doubles_it(lexicon):
    assert lexicon.choices("review the the budget") == [WordChoice(2, ("the", ""))]
    assert lexicon.choices("She had had enough, and that that was all") == []
    assert lexicon.choices("the end. The end") == []  # a sentence ends between them
    assert lexicon.choices("the (the budget)") == []  # an aside that begins with the same word


def test_a_capital_mid_sentence_may_be_a_slip_unless_the_word_is_a_name_or_in_a_title(lexicon):
    lexicon = Lexicon({**lexicon.counts, "has": 500, "Has": 20, "Access": 90, "access": 400, "Free": 300,
                       "free": 900})
    assert lexicon.choices("the report Has been sent") == [WordChoice(2, ("Has", "has"))]
    assert lexicon.choices("the report. Has it been sent") == []  # a sentence's start
    assert lexicon.choices("send it on Friday") == []  # mostly capitalised: a name
    assert lexicon.choices("a Free licence") == []  # capitalised a third of the time: not clearly a slip
    assert lexicon.choices("the Mandatory Access Control system") == []  # beside another capital: a title
    assert lexicon.choices('the "Access" rights') == []  # quoted


def test_read_and_write_round_trip(tmp_path, lexicon):
    path = tmp_path / "lexicon.txt"
    lexicon.write(path)
    assert path.read_text().splitlines()[:2] == ["the\t900", "from\t300"]  # most frequent first
    assert Lexicon.read(path).counts == WORDS
    path.write_text("the\t900\nreport forty\n")
    with pytest.raises(ValueError, match=r"lexicon.txt:2: expected 'word<TAB>count'"):
        Lexicon.read(path)


def test_from_texts_counts_cores_and_drops_words_seen_once():
    lexicon = Lexicon.from_texts(["The report, the review.", "A report (draft) and the end"], min_count=2)
    assert lexicon.counts == {"the": 2, "report": 2}  # "The" is another word (seen once), as is "review"


def test_typo_then_fix_on_real_prose(lexicon):
    """The corruption the evaluation uses, on words the lexicon knows, is undone when a word has one
    candidate: the round trip the shipped model's fix starts from."""
    rng = random.Random(3)
    for word in ("report", "review", "budget", "Friday"):
        slipped = typo(word, rng)
        if not lexicon.knows(slipped):
            assert lexicon.candidates(slipped)[0] == word
