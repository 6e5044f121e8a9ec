"""The request-time fork, and the merge of a redraft into the live document.

Everything in this module works in code points and converts to pycrdt 0.14's UTF-8 byte offsets at the
edge; UTF-16 offsets and relative positions are positions.py's.

The merge makes the AI a real CRDT peer that edited the document *as it was when the redraft was asked
for*: the model's text is diffed against the passage of that time, the edits are made on a fork of that
version, and the fork's update is applied to the live document. Text others typed meanwhile, inside or
outside the range, therefore survives, and what they deleted stays deleted. The diff is fine-grained
(words, then characters within short changed runs) rather than one delete-and-insert of the whole range,
which would drag a collaborator's concurrent insert to the range's start.
"""

from __future__ import annotations

import difflib
import re
import secrets
from dataclasses import dataclass

from pycrdt import Doc, Text

from ..room import TEXT_NAME

WORDS = re.compile(r"\w+|\s+|[^\w\s]")
INVALID_TEXT = re.compile(r"[\ud800-\udfff]")
CHAR_REFINE_MAX = 200  # changed runs up to this many characters are re-diffed character by character
# Unchanged runs shorter than this (characters) between two changes are folded into them: no chaff.
MIN_WORD_RUN, MIN_CHAR_RUN = 2, 3


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


# --- the fork ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fork:
    """The document as it was at request time (a full update), and the passage's place in it."""

    snapshot: bytes
    start: int  # code points
    end: int
    passage: str
    value: str  # the whole text then, to tell later whether the passage was edited


def passage_state(fork: Fork, changes: list[tuple[int, int, str]], result: str | None = None) -> tuple[bool, bool]:
    """(edited, clashing) for the edits made to the fork's text since (revert.diff(fork.value, now)):
    whether a character of the passage was deleted or replaced, or text typed strictly inside it (typing
    at its edges does not count); and whether the suggestion `result` can no longer be merged: every
    character of the passage is gone, or others deleted or replaced characters that it rewrites too (both
    rewrites would land side by side: "The tiredsleepy dog").

    Compares text rather than resolving the anchors: pycrdt 0.14 cannot resolve a sticky index on some
    restored characters (a Rust panic), and after an undone redraft those are common."""
    rewritten = [] if result is None else [
        (fork.start + start, fork.start + end) for start, end, _ in edits(fork.passage, result) if end > start
    ]
    is_edited, is_clashing, kept = False, False, fork.end - fork.start
    for start, end, _ in changes:
        if (start < fork.end and end > fork.start) or (start == end and fork.start < start < fork.end):
            is_edited = True
        kept -= max(0, min(end, fork.end) - max(start, fork.start))
        if end > start and any(start < r_end and end > r_start for r_start, r_end in rewritten):
            is_clashing = True
    return is_edited, is_edited and (kept <= 0 or is_clashing)


def edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) in `old`'s code points, in ascending order, that turn old into new."""
    if old == new:
        return []
    a, b = WORDS.findall(old), WORDS.findall(new)
    a_at = _offsets(a)
    b_at = _offsets(b)
    result: list[tuple[int, int, str]] = []
    for tag, i1, i2, j1, j2 in _fold_chaff(difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes(), a, MIN_WORD_RUN):
        if tag == "equal":
            continue
        o1, o2, n1, n2 = a_at[i1], a_at[i2], b_at[j1], b_at[j2]
        if tag == "replace" and max(o2 - o1, n2 - n1) <= CHAR_REFINE_MAX:
            result += _char_edits(old[o1:o2], new[n1:n2], o1)
        else:
            result.append((o1, o2, new[n1:n2]))
    return result


def _offsets(tokens: list[str]) -> list[int]:
    at = [0]
    for token in tokens:
        at.append(at[-1] + len(token))
    return at


def _fold_chaff(opcodes, tokens: list[str], min_run: int):
    """Joins adjacent changes, and a change, an unchanged run shorter than min_run characters and another
    change into one change: keeping a lone space or letter between two rewritten words scatters the edit."""
    out: list[tuple] = []
    for op in opcodes:
        tag, i1, i2, j1, j2 = op
        if tag != "equal" and out and out[-1][0] != "equal":
            out[-1] = ("replace", out[-1][1], i2, out[-1][3], j2)
        elif (
            tag != "equal"
            and len(out) >= 2
            and out[-2][0] != "equal"
            and len("".join(tokens[out[-1][1] : out[-1][2]])) < min_run
        ):
            out.pop()
            out[-1] = ("replace", out[-1][1], i2, out[-1][3], j2)
        else:
            out.append(op)
    return out


def _char_edits(old: str, new: str, base: int) -> list[tuple[int, int, str]]:
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return [(base + i1, base + i2, new[j1:j2]) for tag, i1, i2, j1, j2 in _fold_chaff(ops, list(old), MIN_CHAR_RUN) if tag != "equal"]


def merge_update(fork: Fork, result: str, doc_clients: set[int] = frozenset(), client_id: int | None = None) -> bytes:
    """The update that turns the fork's passage into `result`, made by a fresh client on the fork (one
    not in `doc_clients`, or `client_id`).

    Apply it to the live document: it carries only the AI's edits, positioned relative to the characters
    of the request-time version, so it lands correctly whatever happened since. Refuses (ValueError) a
    result that is not valid text: a lone surrogate, or U+FFFD the passage did not have (seams.clean
    removes them from the model's output; this is the last guard).
    """
    if INVALID_TEXT.search(result) or ("\ufffd" in result and "\ufffd" not in fork.passage):
        raise ValueError("the redraft's text holds a lone surrogate or a replacement character")
    if client_id is None:
        client_id = fresh_client_id(set(doc_clients))
    doc = Doc(client_id=client_id)
    doc.apply_update(fork.snapshot)
    text = doc.get(TEXT_NAME, type=Text)
    value = str(text)
    if value[fork.start : fork.end] != fork.passage:
        raise AssertionError("the fork does not hold the passage it was taken for")
    before = doc.get_state()
    with doc.transaction():
        # Last edit first, so earlier offsets stay valid. Insert before deleting: the new words then sit
        # where the old ones began, and an insert a collaborator made among the old words follows them.
        for start, end, replacement in reversed(edits(fork.passage, result)):
            at = _byte_offset(value, fork.start + start)
            if replacement:
                text.insert(at, replacement)
            if end > start:
                removed = _byte_offset(value, fork.start + end) - _byte_offset(value, fork.start + start)
                offset = at + len(replacement.encode())
                del text[offset : offset + removed]
    return doc.get_update(before)


def fresh_client_id(taken: set[int]) -> int:
    # Yjs draws 32-bit client ids; a collision with a writer of this document would corrupt it.
    while True:
        candidate = secrets.randbits(32)
        if candidate not in taken:
            return candidate
