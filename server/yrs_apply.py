"""Applying updates to a pycrdt `Doc` that nothing observes, without pycrdt's Python transaction around them.

pycrdt's `Doc.apply_update` opens a Python `Transaction` (leases, origins, an optional lock, observer errors
gathered) around yrs' own apply: 3 of a keystroke's 7 µs, and the largest single part of vetting and applying
it at the ramp's top (issue 21). Where no Python callback can run (nothing observes the document or its
types), yrs' transaction alone does the same: it is committed, and dropped whatever happens, as pycrdt's is.

Several updates are cheaper in one transaction than one each (`apply_all_unobserved`): yrs' commit merges each
new item into the block before it when they continue one client's typing, and that merge counts the whole
block's UTF-16 length. A typist's run that reached 5,000 characters made each keystroke's commit cost twice a
short run's, one commit for a client's 10 keystrokes pays it once (0.6 instead of 2.2 µs a keystroke here).

This reaches into pycrdt's `_doc` (the yrs document), pinned in pyproject.toml; the tests apply every
keystroke through it, so a pycrdt that changed it fails them at once.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from pycrdt import Doc

# A stretch: at most this many updates or bytes in one transaction. A commit merges each typist's run once,
# however many of its keystrokes the stretch holds, and one transaction does not grow past what yrs keeps
# cheaply (6,000 history entries in one took 7 times as long as in stretches). 1.4-3 ms of yrs at most.
STRETCH_UPDATES = 512
STRETCH_BYTES = 64 << 10


def apply_unobserved(doc: Doc, update: bytes) -> None:
    """`doc.apply_update(update)` for a document nothing observes (raises as yrs does: nothing applied)."""
    apply_all_unobserved(doc, (update,))


def apply_all_unobserved(doc: Doc, updates: Iterable[bytes]) -> None:
    """Applies `updates` in order, in one transaction, to a document nothing observes. An update yrs refuses
    raises with nothing of it applied; those before it are in and committed."""
    inner = doc._doc
    transaction = inner.create_transaction()
    try:
        for update in updates:
            inner.apply_update(transaction, update)
    finally:
        try:
            transaction.commit()
        finally:
            transaction.drop()


def stretches(updates: list[bytes]) -> Iterator[list[bytes]]:
    """`updates` in order, cut into stretches of at most STRETCH_UPDATES updates or STRETCH_BYTES bytes (one
    larger update alone)."""
    start, size = 0, 0
    for end, update in enumerate(updates):
        if end > start and (end - start == STRETCH_UPDATES or size + len(update) > STRETCH_BYTES):
            yield updates[start:end]
            start, size = end, 0
        size += len(update)
    if start < len(updates):
        yield updates[start:]
