"""The clean-prose rules every training paragraph passes: what is kept, what is dropped, and why."""

from __future__ import annotations

import pytest

from training.corpus_prose import dedup_key, finish_paragraph, is_plain_prose, normalise, sentences

PROSE = "The package manager installs software and keeps the whole system consistent when it is updated."


def test_normalise_gives_plain_quotes_spaces_and_punctuation():
    raw = "\u201cAPT\u201d is the\u00a0package tool\u2019s name \u2026\n\t and (  it ) works ."
    assert normalise(raw) == "\"APT\" is the package tool's name ... and (it) works."
    assert normalise("run apt list ?automatic now") == "run apt list ?automatic now"  # not before a word
    assert normalise("unpacking on a `foreign' host") == "unpacking on a 'foreign' host"


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        "Debian GNU/Linux runs on many machines, and the file /etc/fstab lists the filesystems to mount.",
        "Call len() on the list to know how many items it holds, which costs nothing at all.",
        "It costs $10 and takes 2:30 hours; the work is done by 10% of the volunteers, they said.",
        "\"Quoted speech\" is a sentence too, and so is a paragraph that ends on a question mark?",
    ],
)
def test_prose_is_kept(text):
    assert is_plain_prose(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Short sentence.", "under 60 characters"),
        ("the package manager installs software and keeps the whole system consistent.", "lower-case start"),
        ("The package manager installs software and keeps the whole system consistent", "no sentence end"),
        ("The package manager installs software and keeps the whole system consistent when:", "ends on a colon"),
        ("See https://www.debian.org/doc/ for the package manager and the whole system manual.", "a URL"),
        ("See www.debian.org for the package manager documentation and the whole system manual.", "a URL"),
        ("Write to debian-user@lists.debian.org about the package manager and the whole system.", "an e-mail"),
        ("Copy /etc/apt/sources.list to /etc/apt/sources.list.d/old.list before the whole upgrade.", "two paths"),
        ("Set DEBIAN_FRONTEND=noninteractive and run the package manager with APT_LISTCHANGES off.", "2 names"),
        ("Use --force-all and --force-overwrite only when the package manager cannot fix the system.", "options"),
        ("The package manager installs software and keeps the ``whole`` system consistent today.", "backticks"),
        ("The package manager installs <em>software</em> and keeps the whole system consistent today.", "a tag"),
        ("The package manager installs software and keeps the whole system consistent \ufffd today.", "U+FFFD"),
        ("The package manager:: installs software and keeps the whole system consistent today.", "reST"),
        ("The package manager installs **software** and keeps the whole system consistent today.", "reST"),
        ("X = 1 + 2 * 3 - 4 / 5 == 6 != 7 <= 8; Y = 9 + 10 * 11 - 12 / 13 == 14 != 15; Z = 16.", "letters"),
    ],
)
def test_not_prose_is_dropped(text, why):
    assert not is_plain_prose(text), why


def test_finish_paragraph_drops_a_last_sentence_that_introduces_a_listing():
    assert finish_paragraph(PROSE + " For example:") == PROSE
    assert finish_paragraph("To update the list of packages known by your system, you can run:") is None
    assert finish_paragraph("  " + PROSE.replace(" ", "\n  ") + " ") == PROSE
    assert finish_paragraph("See https://example.org for the package manager and the whole system.") is None


def test_sentences_do_not_split_after_abbreviations():
    text = "Use a list, e.g. the one above. Then call it! Done (twice)."
    assert sentences(text) == ["Use a list, e.g. the one above.", "Then call it!", "Done (twice)."]


def test_dedup_key_ignores_case_punctuation_and_spacing_only():
    assert dedup_key("The APT tool, installs packages.") == dedup_key("the apt tool installs  packages")
    assert dedup_key("The APT tool installs packages.") != dedup_key("The APT tool removes packages.")
