"""Applying an update to a pycrdt `Doc` that nothing observes, without pycrdt's Python transaction around it.

pycrdt's `Doc.apply_update` opens a Python `Transaction` (leases, origins, an optional lock, observer errors
gathered) around yrs' own apply: 3 of a keystroke's 7 µs, and the largest single part of vetting and applying
it at the ramp's top (issue 21). Where no Python callback can run (nothing observes the document or its
types), yrs' transaction alone does the same: it is committed, and dropped whatever happens, as pycrdt's is.

This reaches into pycrdt's `_doc` (the yrs document), pinned in pyproject.toml; the tests apply every
keystroke through it, so a pycrdt that changed it fails them at once.
"""

from __future__ import annotations

from pycrdt import Doc


def apply_unobserved(doc: Doc, update: bytes) -> None:
    """`doc.apply_update(update)` for a document nothing observes (raises as yrs does: nothing applied)."""
    inner = doc._doc
    transaction = inner.create_transaction()
    try:
        inner.apply_update(transaction, update)
        transaction.commit()
    finally:
        transaction.drop()
