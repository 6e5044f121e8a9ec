"""What counts as a training paragraph: clean plain English prose, the text the small model will learn to write.

Every source (reST, HTML) first renders its markup away; what is left here decides whether a paragraph is
prose a person would type into the editor. Code, shell commands, paths, URLs and configuration lines are the
biggest risk in documentation: a paragraph that is mostly them teaches the model to emit them, so such a
paragraph is dropped whole rather than repaired. Typographic quotes and non-breaking spaces become their plain
forms so that the corpora agree with what people type.
"""

from __future__ import annotations

import hashlib
import re

MIN_PARAGRAPH_CHARS = 60
MIN_LETTER_SHARE = 0.85  # letters and spaces among all characters
MAX_TECHNICAL_TOKENS = 1  # words like paths or identifiers: one in a paragraph is prose, two is a listing

_PLAIN_FORMS = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
        "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u200b": "", "\u00ad": "", "\ufeff": "",
        "\u2026": "...", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    }
)
# Characters that only markup, code or a rendering failure leave in a paragraph.
_MARKUP = re.compile(r"[`<>{}\\|\ufffd]|::|\*\*|\$\(|\[\[|\]\]|&\w+;|^#|\(\)\(|\]_")
_URL = re.compile(r"\b(?:https?|ftp|file)://|\bwww\.\w|\b[\w.+-]+@[\w-]+\.[\w.]+|\b\w+\.(?:com|org|net|html?)\b")
# A word that is a path, an assignment, an identifier, a variable, an index, a glob, a command-line option, a
# file extension or a version string; "GNU/Linux", "and/or", "input/output" (word/word) are prose.
_TECHNICAL = re.compile(r"[/=_\[\]{}$~^@*+#]|\w;\w|[A-Za-z]:\w|\w:[A-Za-z]|^[(\"']?[.-]+[A-Za-z]")
_WORD_SLASH_WORD = re.compile(r"^[(\"']?[A-Za-z]+/[A-Za-z]+[.,;:!?)\"']*$")
_SENTENCE_START = re.compile(r"^[\"'(]?[A-Z0-9]")
_SENTENCE_END = re.compile(r"[.!?][)\"']*$")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.")
_TEX_QUOTE = re.compile(r"`(\w[^`'\n]*)'")  # `quoted' in older texts (the FAQ): plain 'quoted'
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?)])(?=\s|$)")
_SPACE_AFTER_OPENING = re.compile(r"([(])\s+")


def normalise(text: str) -> str:
    """Plain quotes and spaces, one line, no space before punctuation (left where inline markup was cut)."""
    text = " ".join(text.translate(_PLAIN_FORMS).split())
    text = _TEX_QUOTE.sub(r"'\1'", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    return _SPACE_AFTER_OPENING.sub(r"\1", text)


def finish_paragraph(text: str) -> str | None:
    """A rendered paragraph normalised, without a last sentence that introduces what was dropped; None if it is
    not plain prose.

    Documentation often ends a paragraph with "For example:" before a listing or a list that is not kept; the
    model should not learn to end its text on a colon, so that sentence goes (and a paragraph of only it).
    """
    text = normalise(text)
    if text.endswith(":"):
        text = " ".join(sentences(text)[:-1])
    return text if is_plain_prose(text) else None


def sentences(paragraph: str) -> list[str]:
    """A paragraph cut at sentence ends (not after e.g., i.e., etc.)."""
    pieces = _SENTENCE_BREAK.split(paragraph)
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_ABBREVIATIONS):
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return merged


def is_plain_prose(text: str) -> bool:
    """Whether a normalised paragraph is prose worth learning: sentences, not code, commands, paths or URLs."""
    if len(text) < MIN_PARAGRAPH_CHARS or not _SENTENCE_START.match(text) or not _SENTENCE_END.search(text):
        return False
    if _MARKUP.search(text) or _URL.search(text):
        return False
    if text.count("(") != text.count(")"):
        return False  # cut short inside a parenthesis, or a code fragment
    if sum(c.isalpha() or c == " " for c in text) < MIN_LETTER_SHARE * len(text):
        return False
    return sum(map(_is_technical, text.split())) <= MAX_TECHNICAL_TOKENS


def _is_technical(word: str) -> bool:
    return bool(_TECHNICAL.search(word)) and not _WORD_SLASH_WORD.match(word)


def dedup_key(text: str) -> bytes:
    """Equal for paragraphs that differ only in case, punctuation or spacing (the same text in two sources)."""
    words = re.sub(r"[^\w]+", " ", text.lower()).split()
    return hashlib.sha256(" ".join(words).encode()).digest()[:16]
