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

from typing import Iterable

from pycrdt import Doc


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
