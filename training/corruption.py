"""Corruptions of clean text whose inverse is a redraft task, so a model learns the task from plain prose.

- fix: letter slips in words (two letters swapped, one dropped, one doubled, a letter's case changed) and
  doubled words; the model restores the clean words.
- shorten: parenthetical remarks "(...)", non-restrictive clauses ", which ...," and filler words ("really",
  "basically", ...) are the part a shorter version leaves out; for text that has none, fillers are inserted
  first, so the model learns what to drop, not to guess which facts matter.

Both are written as aligned word pairs (shown, clean): the text the model is shown and, word for word, what
it should write; a clean "" is a word to delete. `aligned_canvases` turns the pairs into a source canvas (the
shown text's tokens, what the sampler starts from) and a target of the same length where a word's edit stays
in that word's token slots and the slots it no longer needs are pad, which decoding drops. An edit that would
need more tokens than its shown word has (rare: a slip usually splits a word into more tokens) is left out.
"""

from __future__ import annotations

import random

from engine.text.spelling import split_word

SLIP_KINDS = ("swap", "drop", "double", "case")
MIN_SLIP_LETTERS = 3
FILLERS = ("really", "very", "quite", "actually", "basically", "simply", "certainly", "generally", "just")
_RELATIVE = ("which", "who", "whose", "whom")


def typo(word: str, rng: random.Random) -> str:
    """The word with one slip in its letters; a word of fewer than MIN_SLIP_LETTERS letters unchanged."""
    lead, core, tail = split_word(word)
    if sum(c.isalpha() for c in core) < MIN_SLIP_LETTERS:
        return word
    for _ in range(8):  # a swap of two equal letters changes nothing: draw again
        slipped = _slip(core, rng.choice(SLIP_KINDS), rng)
        if slipped != core:
            return lead + slipped + tail
    return word


def _slip(core: str, kind: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(core) if c.isalpha()]
    i = rng.choice(letters)
    if kind == "swap" and i + 1 < len(core) and core[i + 1].isalpha():
        return core[:i] + core[i + 1] + core[i] + core[i + 2 :]
    if kind == "drop":
        return core[:i] + core[i + 1 :]
    if kind == "double":
        return core[:i] + core[i] + core[i:]
    if kind == "case":
        return core[:i] + core[i].swapcase() + core[i + 1 :]
    return core


def misspell_words(words: list[str], rng: random.Random, rate: float) -> list[str]:
    """The same words, each one with letters given a typo with probability `rate`."""
    return [typo(word, rng) if rng.random() < rate else word for word in words]


def fix_pairs(words: list[str], rng: random.Random, typo_rate: float, double_rate: float) -> list[tuple[str, str]]:
    """(shown, clean) pairs: typos at typo_rate, and a word shown twice at double_rate (its copy deleted)."""
    pairs: list[tuple[str, str]] = []
    for word in words:
        shown = typo(word, rng) if rng.random() < typo_rate else word
        pairs.append((shown, word))
        if rng.random() < double_rate and word.isalpha():
            pairs.append((word, ""))
    return pairs


def shorten_pairs(words: list[str], rng: random.Random, filler_rate: float = 0.08) -> list[tuple[str, str]]:
    """(shown, clean) pairs in which parentheticals, ", which ...," clauses and filler words are deleted. With
    nothing of the kind in the text, fillers are inserted before some words (at least one)."""
    pairs = [(word, word) for word in words]
    _drop_parentheticals(pairs)
    _drop_relative_clauses(pairs)
    for i, (word, clean) in enumerate(pairs):
        if clean and word.lower().strip(",") in FILLERS:
            pairs[i] = (word, "")
    if all(clean for _, clean in pairs):
        pairs = _insert_fillers(pairs, rng, filler_rate)
    return pairs


def _drop_parentheticals(pairs: list[tuple[str, str]]) -> None:
    start = None
    for i, (word, _) in enumerate(pairs):
        if word.startswith("(") and start is None:
            start = i
        if start is not None and word.rstrip(".,;:").endswith(")"):
            if i - start < 20 and i > 0:  # a long bracket is content, not an aside
                _delete(pairs, start, i)
                _keep_closing_punctuation(pairs, i)
            start = None


def _drop_relative_clauses(pairs: list[tuple[str, str]]) -> None:
    """", which is new, is" -> "is": from a comma followed by a relative pronoun to the next comma."""
    i = 0
    while i < len(pairs) - 1:
        word, _ = pairs[i]
        if word.endswith(",") and pairs[i + 1][0] in _RELATIVE:
            end = next((j for j in range(i + 2, min(len(pairs), i + 16)) if pairs[j][0].endswith(",")), None)
            if end is not None:
                pairs[i] = (word, word[:-1])  # the comma that opened the clause goes with it
                _delete(pairs, i + 1, end)
                i = end
        i += 1


def _delete(pairs: list[tuple[str, str]], first: int, last: int) -> None:
    for j in range(first, last + 1):
        pairs[j] = (pairs[j][0], "")


def _keep_closing_punctuation(pairs: list[tuple[str, str]], i: int) -> None:
    """"word (aside)." -> "word.": the sentence's own punctuation after the bracket stays, in the bracket's
    last slot, and attaches to the word before it (see `_attaches`)."""
    shown = pairs[i][0]
    trailing = shown[len(shown.rstrip(".,;:")) :]
    if trailing:
        pairs[i] = (shown, trailing)


def _insert_fillers(pairs: list[tuple[str, str]], rng: random.Random, rate: float) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    inserted = False
    candidates = [i for i, (word, _) in enumerate(pairs) if i > 0 and word.isalpha() and word.islower()]
    forced = rng.choice(candidates) if candidates else None
    for i, pair in enumerate(pairs):
        if i == forced or (i in candidates and rng.random() < rate):
            out.append((rng.choice(FILLERS), ""))
            inserted = True
        out.append(pair)
    return out if inserted else pairs


def shown_text(pairs: list[tuple[str, str]]) -> str:
    return " ".join(shown for shown, _ in pairs)


def clean_text(pairs: list[tuple[str, str]]) -> str:
    text = ""
    for _, clean in pairs:
        if clean:
            text += clean if not text or _attaches(clean) else " " + clean
    return text


def _attaches(clean: str) -> bool:
    """Punctuation alone (what is left of a deleted bracket) joins the word before it without a space."""
    return not any(c.isalnum() for c in clean)


def aligned_canvases(
    tokenizer, pairs: list[tuple[str, str]], canvas_length: int, end_id: int, pad_id: int
) -> tuple[list[int], list[int]] | None:
    """(source canvas, target canvas), each canvas_length ids ending in end_id then pad; None when the shown
    text does not fit one canvas or an edit needs more tokens than its shown word has."""
    source: list[int] = []
    target: list[int] = []
    first_clean = True
    for index, (shown, clean) in enumerate(pairs):
        shown_ids = _encode(tokenizer, shown if index == 0 else " " + shown)
        joined = first_clean or _attaches(clean)
        clean_ids = [] if not clean else _encode(tokenizer, clean if joined else " " + clean)
        if len(clean_ids) > len(shown_ids):
            return None
        first_clean = first_clean and not clean
        source += shown_ids
        target += clean_ids + [pad_id] * (len(shown_ids) - len(clean_ids))
    if len(source) + 1 > canvas_length or source != _encode(tokenizer, shown_text(pairs)):
        return None  # too long, or the word-by-word ids differ from the whole text's (what inference starts from)
    padding = [pad_id] * (canvas_length - len(source) - 1)
    return source + [end_id] + padding, target + [end_id] + padding


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)
