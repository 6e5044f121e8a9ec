"""The store protocol the rooms rely on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        """Replaces the snapshot with `snapshot`, which holds every log entry up to `upto`,
        and drops those entries. An older snapshot never replaces a newer one."""
        ...

    async def check(self) -> dict:
        """Raises when the store cannot serve; else a few facts for /healthz."""
        ...

    async def close(self) -> None: ...
