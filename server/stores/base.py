"""The store protocol the rooms rely on, and the compaction both stores share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pycrdt import Doc


@dataclass(frozen=True)
class StoredDoc:
    updates: list[bytes]  # the snapshot (if any) first, then the log in order
    cursor: str  # position of the newest log entry, where fan-out resumes
    size_bytes: int


class Store(Protocol):
    kind: str

    async def start(self) -> None: ...

    async def load(self, doc: str) -> StoredDoc: ...

    async def append(self, doc: str, updates: list[bytes]) -> str:
        """Appends durably (it survives the server's SIGKILL) and returns the new cursor."""
        ...

    async def compact(self, doc: str) -> int:
        """Folds the log into the snapshot; returns the document's stored size."""
        ...

    async def check(self) -> dict:
        """Raises when the store cannot serve; else a few facts for /healthz."""
        ...

    async def close(self) -> None: ...


def merge_to_snapshot(updates: list[bytes]) -> bytes:
    """The document's whole state as one update, deleted content garbage-collected.

    Replaying into a Doc (rather than pycrdt.merge_updates) drops the text of
    deleted items, so a document edited for weeks does not keep every keystroke.
    """
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()
