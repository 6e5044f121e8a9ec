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
behind (checked with pycrdt 0.14.13). Text positions have no such chain. What they cannot tell is which of
two equal runs is whose: "alpha" typed just before the "alpha" a redraft wrote may come back on the other
side of the restored passage. Nothing is lost; the diff is a shortest edit script, so this takes text
that repeats exactly at the edge.

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
MYERS_STEPS = 400_000  # (N+M) x D of a shortest edit script, some 0.2 s of Python at most


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
    """The change with its inverse moved onto the text `now`, or what others did that forbids taking it back.

    A diff is ambiguous where an edit borders equal characters ("xaaY" -> "xaY": which "a" went? "gamma!"
    -> "gammagamma!": before or after the first "gamma"?). An alignment that leaves the change's text
    untouched describes the same text now, and undoing along it overwrites nobody: so an insert or a
    deletion that touches it is first slid along equal characters to where it does not (nearest first,
    leftwards first: typing just before the redraft's text stays before it)."""
    if change.landed == now:
        return change
    ranges = [(start, end) for start, end, _ in change.inverse]
    return _rebase(change, now, _slid(diff(change.landed, now), change.landed, ranges))


def rebase_along(change: Change, now: str, edits: list[tuple[int, int, str]]) -> Change | Touched:
    """`rebase` for edits known exactly (a transaction's delta, see `delta_edits`): no diff, no guessing."""
    return _rebase(change, now, edits)


def delta_edits(text: str, delta: list[dict]) -> tuple[list[tuple[int, int, str]], str]:
    """A pycrdt text event's delta (retain and delete count UTF-8 bytes) as edits in `text`'s code points,
    and the text after them."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    is_ascii = len(encoded) == len(text)
    edits, at_byte, at = [], 0, 0
    for part in delta:
        if "insert" in part:
            inserted = part["insert"]
            if isinstance(inserted, str):
                edits.append((at, at, inserted))
            continue
        count = part.get("retain", part.get("delete", 0))
        end = at + (count if is_ascii else len(encoded[at_byte : at_byte + count].decode("utf-8", errors="surrogatepass")))
        if "delete" in part:
            edits.append((at, end, ""))
        at, at_byte = end, at_byte + count
    return edits, changed(text, edits).landed


def _slid(others: list[tuple[int, int, str]], old: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """The edits, with each pure insert or deletion that touches a range moved, one character at a time
    along equal text, to an equivalent place that does not (left first, then right); a deletion that meets
    another deletion joins it and goes on ("\\n \\n" deleted may come out as three deletions around the
    range's first "\\n")."""
    ops = list(others)
    i = 0
    while i < len(ops):
        if any(_touches(ops[i], start, end) for start, end in ranges):
            for step in (-1, 1):
                moved = _slide(ops, i, old, ranges, step)
                if moved is not None:
                    ops, i = moved
                    break
        i += 1
    return ops


def _slide(ops: list, i: int, old: str, ranges, step: int) -> tuple[list, int] | None:
    """ops with ops[i] slid in direction `step` until it touches no range, and its new index; None if it
    cannot get there."""
    ops = list(ops)
    for _ in range(len(old) + 1):
        o1, o2, text = ops[i]
        low = ops[i - 1][1] if i else 0
        high = ops[i + 1][0] if i + 1 < len(ops) else len(old)
        if o1 == o2 and text:  # an insert: rotate it along the character it passes
            if step < 0 and low < o1 and text[-1] == old[o1 - 1]:
                ops[i] = (o1 - 1, o1 - 1, old[o1 - 1] + text[:-1])
            elif step > 0 and o1 < high and text[0] == old[o1]:
                ops[i] = (o1 + 1, o1 + 1, text[1:] + old[o1])
            else:
                return None
        elif o2 > o1 and not text:  # a deletion: shift it along equal characters, joining one it meets
            if step < 0 and o1 == low and i and ops[i - 1][2] == "" and ops[i - 1][0] < low:
                ops[i - 1 : i + 1] = [(ops[i - 1][0], o2, "")]
                i -= 1
                continue
            if step > 0 and o2 == high and i + 1 < len(ops) and ops[i + 1][2] == "" and ops[i + 1][1] > high:
                ops[i : i + 2] = [(o1, ops[i + 1][1], "")]
                continue
            if step < 0 and low < o1 and old[o1 - 1] == old[o2 - 1]:
                ops[i] = (o1 - 1, o2 - 1, "")
            elif step > 0 and o2 < high and old[o1] == old[o2]:
                ops[i] = (o1 + 1, o2 + 1, "")
            else:
                return None
        else:
            return None
        if not any(_touches(ops[i], start, end) for start, end in ranges):
            return ops, i
    return None


def _rebase(change: Change, now: str, others: list[tuple[int, int, str]]) -> Change | Touched:
    moved, touched_words, inserted, is_context_gone = [], 0, set(), False
    for start, end, before in change.inverse:
        hits = [op for op in others if _touches(op, start, end)]
        if hits and start == end:
            is_context_gone = True
        elif hits:
            touched_words += _words_touched(change.landed, start, end, hits)
            # Who: what was typed in its place (an insert at its very edge too: a replacement is often a
            # deletion of its words and an insert beside them).
            inserted.update(_new_range(others, op) for op in others if op[2] and start <= op[0] <= end)
        if not hits:
            at = _moved(others, start)
            moved.append((at, at + end - start, before))
            assert now[at : at + end - start] == change.landed[start:end], "a range moved onto other text"
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
    _diff_middle(old[prefix : len(old) - suffix], new[prefix : len(new) - suffix], prefix, 0, result)
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


def _diff_middle(old: str, new: str, base: int, level: int, out: list) -> None:
    """A shortest edit script (Myers) when it is cheap, so that an edit is one pure insert or deletion that
    can slide; else lines, then words, then characters by difflib (which may split one insert in two)."""
    found = _shortest(old, new)
    if found is None:
        _diff_level(old, new, base, level, out)
    else:
        out.extend((base + start, base + end, text) for start, end, text in found)


def _shortest(old: str, new: str) -> list[tuple[int, int, str]] | None:
    """Myers' O((N+M)D) shortest edit script, as runs of inserts and deletions; None past MYERS_STEPS work."""
    n, m = len(old), len(new)
    max_d = min(n + m, MYERS_STEPS // max(1, n + m))
    v, trace = {1: 0}, []
    for d in range(max_d + 1):
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            while x < n and y < m and old[x] == new[y]:
                x, y = x + 1, y + 1
            v[k] = x
            if x >= n and y >= m:
                return _script(trace, old, new)
    return None


def _script(trace: list[dict], old: str, new: str) -> list[tuple[int, int, str]]:
    """The edits of a Myers trace, walked back from the end, merged into runs."""
    x, y = len(old), len(new)
    steps = []  # (old index, inserted char or None for a deletion), from the end
    for d in range(len(trace) - 1, 0, -1):
        v, k = trace[d], x - y
        prev_k = k + 1 if k == -d or (k != d and v[k - 1] < v[k + 1]) else k - 1
        prev_x = v[prev_k]
        prev_y = prev_x - prev_k
        x, y = prev_x, prev_y
        steps.append((x, new[y] if prev_k == k + 1 else None))
    edits: list[list] = []
    for at, char in reversed(steps):
        if char is None:
            if edits and not edits[-1][2] and edits[-1][1] == at:
                edits[-1][1] = at + 1
            else:
                edits.append([at, at + 1, ""])
        elif edits and edits[-1][0] == edits[-1][1] == at:
            edits[-1][2] += char
        else:
            edits.append([at, at, char])
    return [tuple(edit) for edit in edits]


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
