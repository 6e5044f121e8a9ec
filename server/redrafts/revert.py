"""Undo and redo of any redraft, not only the latest: each landed change carries its own inverse.

What a redraft's merge, undo or redo did is kept as text: the document as it stood right after (`landed`)
and, in its positions, the edits that take it back (`inverse`: each range it wrote and the text that was
there before). To take a change back later, the text now is compared with `landed`: the edits others made
since move the inverse's ranges along; if one of them touches a range the change wrote (deleted or replaced
some of it, or typed inside it), taking it back would overwrite their work, so it is refused with what
happened (`Touched`). Otherwise the inverse is applied at the moved positions as an ordinary edit of the
live document, and its own inverse kept: that is the redo. Undo of a later redraft that rewrote this one's
words puts them back, and then this one can be undone too.

This is deliberately not pycrdt's UndoManager: one manager per redraft observes every transaction of the
document, and yrs 0.14 does not follow restored items (`redone`) when an older manager undoes: after
undoing a later redraft that rewrote an earlier one's words, undoing the earlier one left those words
behind (checked with pycrdt 0.14.13). Text positions have no such chain, and two alignments of equal
strings give the same text.

Cost: one copy of the document text per undoable change (shared between changes once rebased, see
`rebase`), and a diff from the last rebase: common prefix and suffix first, then lines, words, characters.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .merge import WORDS

LINES = re.compile(r"[^\n]*\n|[^\n]+")
WORD = re.compile(r"\w+")
REFINE_MAX = 2000  # changed runs up to this many characters are re-diffed one level finer


@dataclass(frozen=True)
class Change:
    """A landed change of a redraft and how to take it back."""

    landed: str  # the whole text right after it landed (or as of the last rebase)
    inverse: tuple[tuple[int, int, str], ...]  # (start, end, text before) in landed's code points, ascending


@dataclass(frozen=True)
class Touched:
    """Why a change cannot be taken back: others' edits since touch what it wrote."""

    num_words: int  # words of the change's own text that others' edits touched
    inserted: tuple[tuple[int, int], ...]  # ranges of the text now that those edits typed (for naming who)
    is_context_gone: bool  # the text around something it removed was deleted since


def changed(before: str, edits: list[tuple[int, int, str]]) -> Change:
    """The change made by applying `edits` ((start, end, replacement) in before's code points, ascending,
    not overlapping) to `before`."""
    parts, inverse, at, shift = [], [], 0, 0
    for start, end, replacement in edits:
        parts.append(before[at:start])
        parts.append(replacement)
        at = end
        inverse.append((start + shift, start + shift + len(replacement), before[start:end]))
        shift += len(replacement) - (end - start)
    parts.append(before[at:])
    return Change("".join(parts), tuple(inverse))


def observed(before: str, after: str) -> Change:
    """The change between two texts seen around an edit (the merge of a redraft into the live document)."""
    return changed(before, diff(before, after))


def rebase(change: Change, now: str) -> Change | Touched:
    """The change with its inverse moved onto the text `now`, or what others did that forbids taking it back."""
    if change.landed == now:
        return change
    others = diff(change.landed, now)
    moved, touched_words, inserted, is_context_gone = [], 0, set(), False
    for start, end, before in change.inverse:
        hits = [op for op in others if _touches(op, start, end)]
        if hits and start == end:
            is_context_gone = True
        elif hits:
            touched_words += _words_touched(change.landed, start, end, hits)
            inserted.update(_new_range(others, op) for op in hits if op[2])
        if not hits:
            at = _moved(others, start)
            moved.append((at, at + end - start, before))
    if touched_words or inserted or is_context_gone:
        ranges = tuple(sorted(r for r in inserted if r[1] > r[0]))
        return Touched(max(touched_words, 1 if ranges else 0), ranges, is_context_gone)
    return Change(now, tuple(moved))


def _touches(op: tuple[int, int, str], start: int, end: int) -> bool:
    o1, o2, _ = op
    if start == end:  # it removed text here: the place itself must still be there
        return o1 < start < o2
    if o1 == o2:  # an insert: inside the range, not at its edges
        return start < o1 < end
    return o1 < end and o2 > start


def _moved(others: list[tuple[int, int, str]], at: int) -> int:
    """Where a position of the old text is now. Another's insert exactly there comes before it."""
    shift = 0
    for o1, o2, replacement in others:
        if o1 >= at and not o1 == o2 == at:
            break
        shift += len(replacement) - (o2 - o1)
    return at + shift


def _new_range(others: list[tuple[int, int, str]], op: tuple[int, int, str]) -> tuple[int, int]:
    """Where the text that `op` typed stands now."""
    shift = 0
    for other in others:
        if other is op:
            break
        shift += len(other[2]) - (other[1] - other[0])
    return (op[0] + shift, op[0] + shift + len(op[2]))


def _words_touched(text: str, start: int, end: int, hits) -> int:
    """Words of text[start:end] that the edits overlap or type inside (at least one)."""
    count = 0
    for word in WORD.finditer(text, start, end):
        ws, we = word.span()
        if any((o1 < we and o2 > ws) if o1 < o2 else ws < o1 < we for o1, o2, _ in hits):
            count += 1
    return max(count, 1)


# --- a precise diff ---------------------------------------------------------------------------------------


def diff(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) in old's code points, ascending, that turn old into new: exact, with no
    folding (merge.edits folds small unchanged runs for a readable merge; this one tells where others typed)."""
    if old == new:
        return []
    limit = min(len(old), len(new))
    prefix = _longest(lambda n: old[:n] == new[:n], limit)
    suffix = _longest(lambda n: old[len(old) - n :] == new[len(new) - n :], limit - prefix)
    result: list[tuple[int, int, str]] = []
    _diff_level(old[prefix : len(old) - suffix], new[prefix : len(new) - suffix], prefix, 0, result)
    return result


def _longest(is_common, limit: int) -> int:
    """The largest n <= limit with is_common(n), by bisection: slice comparisons run in C (a 120 kB text
    with one edit: 0.2 ms for the whole diff, against 29 ms with a Python loop over its characters)."""
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if is_common(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _diff_level(old: str, new: str, base: int, level: int, out: list) -> None:
    if level == 0:
        a, b = LINES.findall(old), LINES.findall(new)
    elif level == 1:
        a, b = WORDS.findall(old), WORDS.findall(new)
    else:
        a, b = list(old), list(new)
    a_at, b_at = _offsets(a), _offsets(b)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        o1, o2, n1, n2 = a_at[i1], a_at[i2], b_at[j1], b_at[j2]
        if tag == "replace" and level < 2 and max(o2 - o1, n2 - n1) <= REFINE_MAX * (10 if level == 0 else 1):
            _diff_level(old[o1:o2], new[n1:n2], base + o1, level + 1, out)
        else:
            out.append((base + o1, base + o2, new[n1:n2]))


def _offsets(tokens: list[str]) -> list[int]:
    at = [0]
    for token in tokens:
        at.append(at[-1] + len(token))
    return at
