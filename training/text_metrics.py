"""Word-level measures of a redraft's text: is it English words, did a fix remove the slips and leave the rest,
did a rewrite keep what the passage said, does it carry markup from the training text.

Each measure returns counts (hits, total), not a ratio, so that training/text_quality.py pools them over many
paragraphs (a short paragraph then weighs as much as its words, and no 0/0 arises). Torch-free, and the
dictionary is Debian's `wamerican`, installed by `.ci/run` and `./dev`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DICTIONARY = Path("/usr/share/dict/american-english")
DICTIONARY_INSTALL = "apt-get install -y --no-install-recommends wamerican"
# Kept out of "content words kept": the words any rewording changes or drops without losing the meaning.
STOP_WORDS = frozenset(
    """a an the and or but if then than so as of to in on at by for with from into onto about over under
    is are was were be been being am has have had do does did will would shall should can could may might must
    it its this that these those there here he she they we you i me him her them us my your his our their
    not no nor also just very too only such which who whom whose what when where why how all any each both
    some more most other own same few""".split()
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_PUNCTUATION = "\"'`.,;:!?()[]{}<>*_~|/\\\u201c\u201d\u2018\u2019\u2026\u2013\u2014-"
_PARTS = re.compile(r"['\-]")
# 3, 2026, 3.5, 1,000, 10th, 1990s, 6:30: a number is fine whatever the dictionary says
_NUMBER = re.compile(r"^\d[\d.,:]*(st|nd|rd|th|s|am|pm)?$")
_MARKUP = re.compile(r"`+|\*\*|</?[A-Za-z][^<>\n]*>|::|^[ \t]*#", re.MULTILINE)


@lru_cache(maxsize=2)
def load_dictionary(path: Path = DICTIONARY) -> frozenset[str]:
    """The dictionary's words, lowercased (a capitalised entry such as "English" matches "english" too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: install it with `{DICTIONARY_INSTALL}`") from None
    return frozenset(line.strip().translate(_APOSTROPHES).lower() for line in text.splitlines() if line.strip())


def bare(word: str) -> str:
    """A whitespace-separated token without the punctuation around it, curly apostrophes made straight."""
    return word.translate(_APOSTROPHES).strip(_PUNCTUATION)


def is_known(word: str, dictionary: frozenset[str]) -> bool | None:
    """Whether a token is a dictionary word or a number; None for a token with neither letters nor digits
    (a dash, an ellipsis), which is not a word at all. "isn't" and "Python's" are entries of their own; a word
    that is not is read as its parts around apostrophes and hyphens ("well-known", "model's"), each of which
    must be a word or a number."""
    core = bare(word)
    if not any(c.isalnum() for c in core):
        return None
    lowered = core.lower()
    if lowered in dictionary or _NUMBER.match(lowered):
        return True
    parts = [part for part in _PARTS.split(lowered) if part]
    return len(parts) > 1 and all(part in dictionary or _NUMBER.match(part) for part in parts)


def dictionary_words(text: str, dictionary: frozenset[str]) -> tuple[int, int]:
    """(dictionary words or numbers, words) of a text."""
    verdicts = [is_known(word, dictionary) for word in text.split()]
    words = [verdict for verdict in verdicts if verdict is not None]
    return sum(words), len(words)


def align(reference: list[str], hypothesis: list[str]) -> tuple[int, set[int]]:
    """Word-level edit distance (substitution, insertion, deletion: 1 each) of hypothesis from reference, and
    the reference positions that an optimal alignment pairs with an identical hypothesis word. Where several
    alignments are optimal, the backtrace takes a match first, so a word kept is counted as kept."""
    n, m = len(reference), len(hypothesis)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = reference[i - 1] == hypothesis[j - 1]
            cost[i][j] = min(cost[i - 1][j - 1] + (not same), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    matched: set[int] = set()
    i, j = n, m
    while i > 0 and j > 0:
        if reference[i - 1] == hypothesis[j - 1] and cost[i][j] == cost[i - 1][j - 1]:
            matched.add(i - 1)
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j - 1] + 1:
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return cost[n][m], matched


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words): the word error rate's numerator and denominator. Words are compared
    exactly (case and punctuation included: a slip may be only a letter's case)."""
    words = reference.split()
    return align(words, hypothesis.split())[0], len(words)


@dataclass(frozen=True)
class FixCounts:
    """A fix of one paragraph, word by word against the clean text."""

    clean_words: int
    input_errors: int  # edit distance of the shown text from the clean one
    output_errors: int  # and of the model's output
    injected: int  # clean words shown with a slip
    removed: int  # of those, the ones the output has right
    intact: int  # clean words shown unchanged
    broken: int  # of those, the ones the output has wrong (changed, dropped)


def fix_counts(clean: str, shown: str, output: str) -> FixCounts:
    """shown: the clean text with slips, word for word (training.corruption.misspell_words keeps the count), so
    its word i is the clean word i; the output is aligned to the clean text to find which words it has right."""
    clean_words, shown_words = clean.split(), shown.split()
    if len(clean_words) != len(shown_words):
        raise ValueError("the shown text must have the clean text's words, some with slips, in the same order")
    slipped = {i for i, (a, b) in enumerate(zip(clean_words, shown_words, strict=True)) if a != b}
    output_errors, right = align(clean_words, output.split())
    return FixCounts(
        clean_words=len(clean_words),
        input_errors=align(clean_words, shown_words)[0],
        output_errors=output_errors,
        injected=len(slipped),
        removed=len(slipped & right),
        intact=len(clean_words) - len(slipped),
        broken=len(set(range(len(clean_words))) - slipped - right),
    )


def content_words(text: str) -> set[str]:
    """The distinct words of a text that carry its meaning: lowercased, without punctuation and stop words."""
    words = {bare(word).lower() for word in text.split()}
    return {word for word in words if any(c.isalnum() for c in word) and word not in STOP_WORDS}


def content_kept(source: str, output: str) -> tuple[int, int]:
    """(the source's content words found in the output, the source's content words)."""
    wanted = content_words(source)
    return len(wanted & content_words(output)), len(wanted)


def markup_count(text: str) -> int:
    """Markup a plain-prose model should not write: backtick runs, `**`, HTML/XML tags, reST's `::`, and a
    line that starts with `#` (a Markdown heading or a comment)."""
    return len(_MARKUP.findall(text))


def replacement_count(text: str) -> int:
    """U+FFFD, the decoder's mark for bytes that are no character (engine/runtime/redrafts.py drops them: any here is
    a regression there)."""
    return text.count("\ufffd")
