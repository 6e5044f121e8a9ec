"""What a slip could have been: the words of a lexicon that one slip turns into the word shown.

A small token-level model cannot tell which word a misspelling stands for: "speling" is two tokens that
share nothing with "spelling"'s. The slips it was trained to undo (training/corruption.py: two letters
swapped, one dropped, one doubled, one letter's case changed) are a known channel, though, so the words a
slip could have come from can be listed: every word of the model's lexicon (its training text's words and a
word list, training/lexicon.py) that one slip turns into the shown word. The model then only has to choose
among them in context (engine/text/slots.py, engine/runtime/generate.py `choose`), and a word the lexicon
knows is never a candidate for change.

Import-cheap (no torch, no tokenizer): the candidates are plain strings.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)  # leading punctuation, the word, trailing punctuation
LETTERS = string.ascii_lowercase
MIN_LETTERS = 3  # training/corruption.py slips only words of at least this many letters
MIN_SLIPPED_LETTERS = MIN_LETTERS - 1  # so a slip has at least this many (one dropped)
MAX_CANDIDATES = 8  # the most frequent ones: a word with more neighbours is too ambiguous to guess anyway
# A capitalised word mid-sentence is a case slip to consider when the lexicon has it in lower case this many
# times more often: on 65 held-out paragraphs the evaluation does not use, 2 and 5 removed 84.2 % of slips, 20
# 83.3 %, 100 81.4 % (none 79.6 %), no correct word changed with any
CAPITAL_RATIO = 5
KEPT_DOUBLES = frozenset({"had", "that"})  # "she had had enough", "he said that that was all": English


def split_word(word: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation)."""
    lead, core, tail = _CORE.match(word).groups()
    return lead, core, tail


@dataclass(frozen=True)
class WordChoice:
    """Word `index` of a passage's whitespace-split words, and what it may become: `options[0]` is the word
    as shown, the others what a slip may have made it from ("" deletes it: a doubled word)."""

    index: int
    options: tuple[str, ...]


class Lexicon:
    """Words (cores, case kept) with how often the training text has them."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self._folded = {word.lower() for word in counts}  # a quick "no" for most of a word's ~500 neighbours

    @classmethod
    def read(cls, path: Path) -> "Lexicon":
        """A file of "word<TAB>count" lines (training writes it beside the weights). Raises ValueError."""
        counts = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            word, _, count = line.partition("\t")
            if not word or not count.isdigit():
                raise ValueError(f"{path}:{number}: expected 'word<TAB>count'")
            counts[word] = int(count)
        return cls(counts)

    @classmethod
    def from_texts(cls, texts, min_count: int = 2) -> "Lexicon":
        """The words of `texts` seen at least min_count times: once may be a slip of the text itself."""
        counts: dict[str, int] = {}
        for text in texts:
            for word in text.split():
                core = split_word(word)[1]
                if core:
                    counts[core] = counts.get(core, 0) + 1
        return cls({word: count for word, count in counts.items() if count >= min_count})

    def write(self, path: Path) -> None:
        ordered = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        path.write_text("".join(f"{word}\t{count}\n" for word, count in ordered), encoding="utf-8")

    def count(self, core: str) -> int:
        """How often the word was seen; a capitalised word also as its lower-case self (a sentence's start)."""
        seen = self.counts.get(core, 0)
        if core[:1].isupper() and core[1:].islower():
            seen += self.counts.get(core.lower(), 0)
        return seen

    def knows(self, core: str) -> bool:
        """Whether a word is nothing to correct: one the lexicon has, or too short or not a word at all
        (numbers, names with digits, punctuation), which no slip was trained on."""
        if sum(c.isalpha() for c in core) < MIN_SLIPPED_LETTERS or not core.replace("-", "").replace("'", "").isalpha():
            return True
        return self.count(core) > 0

    def candidates(self, core: str) -> list[str]:
        """The known words one slip turns into `core`, the most frequent first (at most MAX_CANDIDATES). A
        candidate that starts in another case than `core` must be known as written: "ove" may be "move", not
        "Move" for being a sentence's start."""
        found = {
            word for word in _unslipped(core)
            if word.lower() in self._folded and word != core and sum(c.isalpha() for c in word) >= MIN_LETTERS
            and (self.counts.get(word, 0) if word[0].isupper() != core[0].isupper() else self.count(word)) > 0
        }
        return sorted(found, key=lambda word: (-self.count(word), word))[:MAX_CANDIDATES]

    def _capital_slip(self, core: str) -> bool:
        """A capitalised word mid-sentence that the lexicon has mostly in lower case: its first letter's case may
        be a slip ("the Has" for "the has"); a name ("Debian", "Friday") is mostly capitalised."""
        if not (core[:1].isupper() and core[1:].islower() and len(core) >= MIN_LETTERS):
            return False
        return self.counts.get(core, 0) * CAPITAL_RATIO < self.counts.get(core.lower(), 0)

    def choices(self, passage: str) -> list[WordChoice]:
        """The words of a passage that may be slips, each with what it may have been: unknown words with
        known neighbours one slip away, a word shown twice in a row (its second copy may go), and a word
        capitalised mid-sentence that is mostly written in lower case (`_capital_slip`), unless quoted or
        beside another capitalised word (a title, a name: "Mandatory Access Control")."""
        words = passage.split()
        found = []
        previous, ends_sentence = "", True
        for index, word in enumerate(words):
            lead, core, tail = split_word(word)
            doubled = index and not lead and core.isalpha() and core.lower() == previous.lower()
            if doubled and core.lower() not in KEPT_DOUBLES:
                found.append(WordChoice(index, (word, "")))
            elif core and not self.knows(core):
                options = [lead + candidate + tail for candidate in self.candidates(core)]
                if options:
                    found.append(WordChoice(index, (word, *options)))
            elif index and not (lead or ends_sentence or _in_title(words, index)) and self._capital_slip(core):
                found.append(WordChoice(index, (word, lead + core.lower() + tail)))
            previous = core if not tail else ""  # "end. End" is no doubled word
            ends_sentence = tail[-1:] in (".", "!", "?", ":") or not core
        return found


def _in_title(words: list[str], index: int) -> bool:
    """Whether the word before or after is capitalised too: a title or a name ("Mandatory Access Control")."""
    neighbours = [words[i] for i in (index - 1, index + 1) if 0 <= i < len(words)]
    return any(split_word(word)[1][:1].isupper() for word in neighbours)


def _unslipped(core: str):
    """Every word one slip of training/corruption.py could have turned into `core` (with repeats)."""
    for i in range(len(core) - 1):  # two letters swapped
        yield core[:i] + core[i + 1] + core[i] + core[i + 2 :]
    for i in range(len(core) + 1):  # a letter dropped (a capital only at the start)
        for letter in LETTERS + (LETTERS.upper() if i == 0 else ""):
            yield core[:i] + letter + core[i:]
    for i in range(len(core) - 1):  # a letter doubled
        if core[i] == core[i + 1]:
            yield core[:i] + core[i + 1 :]
    for i, c in enumerate(core):  # a letter's case changed
        if c.isalpha():
            yield core[:i] + c.swapcase() + core[i + 1 :]
