"""The store protocol the rooms rely on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..history.entry import HistoryEntry


@dataclass(frozen=True)
class StoredDoc:
    updates: list[bytes]  # the snapshot (if any) first, then the log in order
    cursor: str  # position of the newest log entry, where fan-out resumes
    size_bytes: int


class Store(Protocol):
    kind: str

    async def start(self) -> None: ...

    async def load(self, doc: str) -> StoredDoc: ...

    async def append(self, doc: str, updates: list[bytes], history: Sequence[HistoryEntry] = ()) -> str:
        """Appends durably (it survives the server's SIGKILL) and returns the new cursor.

        `history` (drafts: their seq is ignored) is recorded in the same atomic step, each entry given the
        document's next seq: an update that was acknowledged always has its history entry."""
        ...

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        """Replaces the snapshot with `snapshot`, which holds every log entry up to `upto`,
        and drops those entries. An older snapshot never replaces a newer one."""
        ...

    # --- history (server/history): never touched by `compact` ----------------------------------

    async def history(
        self,
        doc: str,
        after: int = 0,
        upto: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_updates: bool = True,
    ) -> list[HistoryEntry]:
        """The entries with after < seq <= upto, in seq order (newest first if asked; `limit` keeps the first
        ones of that order). `with_updates=False` reads metadata only (each `update` is b""): a version list
        or retention's scan reads no update bytes."""
        ...

    async def add_baseline(self, doc: str, entry: HistoryEntry) -> bool:
        """Records `entry` (what the document held before history was kept) only if the document has no
        history yet; returns whether it did. Atomic, so two instances loading it at once record one."""
        ...

    async def checkpoint(self, doc: str, at_or_before: int) -> tuple[int, bytes] | None:
        """The newest checkpoint (seq, state) with seq <= at_or_before."""
        ...

    async def put_checkpoint(self, doc: str, seq: int, state: bytes) -> None:
        """Stores `state`, the document after every entry up to `seq` (and none after)."""
        ...

    async def fold_history(
        self, doc: str, run: list[HistoryEntry], merged: HistoryEntry, drop_checkpoints: list[int]
    ) -> bool:
        """Replaces the entries of `run` with `merged` (whose seq is the last of them) and drops those
        checkpoints, atomically, if the history between the run's first and last seq still holds exactly
        those entries (the same seqs and updates); else changes nothing and returns False. Two instances may
        run retention on one document at once: a fold computed from a read that another fold has since
        changed would delete that fold's merged entry, and with it the updates only it held."""
        ...

    async def history_updates(self, doc: str, after: int = 0) -> list[tuple[int, bytes]]:
        """(seq, update) of the entries after `after`, oldest first: what a checkpoint replays, without reading
        each entry's metadata (parsing it cost 8 ms per 1,000 entries, on the server's one busy core)."""
        ...

    async def history_bytes(self, doc: str) -> int:
        """Bytes the document's history and checkpoints take (updates, metadata and states)."""
        ...

    async def check(self) -> dict:
        """Raises when the store cannot serve; else a few facts for /healthz."""
        ...

    async def close(self) -> None: ...
