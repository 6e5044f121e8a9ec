"""A room's side of history: what each batch records, and the housekeeping that follows it.

The write path hands a batch of (update, peer, Change) to `drafts`, which groups consecutive updates of the
same Change into one entry; the room appends them with the batch's log entry in one atomic store call. A batch
from one connection (the usual case) reuses the batch's merged update: history adds no merge and no copy.
Checkpoints and retention run in one background task per room, never on the append path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from ..stores.base import Store
from ..update_merge import merge_all
from .checkpoints import CHECKPOINT_MIN_BYTES, checkpoint_if_due
from .entry import SERVER_AUTHOR, Change, HistoryEntry, Origin
from .rebuild import state_at, unrecorded
from .retention import apply_retention

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0  # at most once an hour per loaded document, and when it unloads
BASELINE_CHANGE = Change(SERVER_AUTHOR, Origin("merged"), None)  # what a document held before history was kept


@dataclass(frozen=True)
class HistoryPolicy:
    is_on: bool = False
    keep_all_days: float = 7.0  # 0: keep every entry
    hourly_days: float = 30.0  # 0: hourly versions for good
    instance_id: str = ""
    clock: Callable[[], float] = field(default=time.time, compare=False)  # a fake "now" in tests
    checkpoint_bytes: int = CHECKPOINT_MIN_BYTES

    @classmethod
    def from_config(cls, config, instance_id: str) -> "HistoryPolicy":
        return cls(config.history == "on", config.history_keep_all_days, config.history_hourly_days, instance_id)


HISTORY_OFF = HistoryPolicy(is_on=False)


class HistoryRecorder:
    def __init__(self, store: Store, doc: str, policy: HistoryPolicy):
        self.store = store
        self.doc = doc
        self.policy = policy
        # Bytes recorded since the newest checkpoint (as of the last look, plus what this room appended since),
        # and when the next one is due: a look reads every entry since that checkpoint, so it is taken only when
        # one may be due, not every 64 KiB of an 8 MB document's (which read 4 MB a time on average).
        self._since_checkpoint_bytes = 0
        self._due_bytes = policy.checkpoint_bytes
        self._retained_at = float("-inf")
        self._housekeeper: asyncio.Task | None = None

    async def on_load(self, state: bytes) -> None:
        """A document with content but no history (written with history off, or before it existed) starts
        its history with one entry holding that content, so every later version rebuilds whole. One whose
        history lacks part of its content (written while history was off) gets that part as an entry, in the
        background: the rebuild it takes (tens of ms for a large document) does not hold up the first sync."""
        newest = await self.store.history(self.doc, limit=1, newest_first=True, with_updates=False)
        if not newest:
            await self.store.add_baseline(self.doc, HistoryEntry.draft(state, BASELINE_CHANGE, self.policy.clock()))
            return
        self._housekeeper = asyncio.get_running_loop().create_task(self._record_gap(state, newest[0].seq))
        self._housekeeper.add_done_callback(self._log_failure)

    async def _record_gap(self, state: bytes, seq: int) -> None:
        gap = await asyncio.to_thread(unrecorded, state, await state_at(self.store, self.doc, seq))
        if gap is not None:
            # In the log too (the replica has it already: applying it again changes nothing), as the store
            # records history only with an append.
            entry = HistoryEntry.draft(gap, BASELINE_CHANGE, self.policy.clock())
            await self.store.append(self.doc, [gap], history=[entry])

    def drafts(self, batch: list[tuple[bytes, Change]], merged: bytes) -> list[HistoryEntry]:
        """The entries of a batch: consecutive updates with the same Change become one (`merged` is the
        whole batch's update, reused when there is one Change)."""
        at = self.policy.clock()
        runs: list[tuple[Change, list[bytes]]] = []
        for update, change in batch:
            if runs and runs[-1][0] == change:
                runs[-1][1].append(update)
            else:
                runs.append((change, [update]))
        if len(runs) == 1:
            return [HistoryEntry.draft(merged, runs[0][0], at)]
        return [
            HistoryEntry.draft(merge_all(updates), change, at)
            for change, updates in runs
        ]

    def recorded(self, entries: list[HistoryEntry]) -> None:
        """After an append: starts housekeeping when a checkpoint may be due or retention's hour has come."""
        self._since_checkpoint_bytes += sum(len(entry.update) for entry in entries)
        is_retention_due = self.policy.clock() - self._retained_at >= RETENTION_EVERY_S
        if self._since_checkpoint_bytes > self._due_bytes or is_retention_due:
            if self._housekeeper is None or self._housekeeper.done():
                self._housekeeper = asyncio.get_running_loop().create_task(self._housekeep())
                self._housekeeper.add_done_callback(self._log_failure)

    async def _housekeep(self) -> None:
        if self._since_checkpoint_bytes > self._due_bytes:
            await self.checkpoint()
        if self.policy.clock() - self._retained_at >= RETENTION_EVERY_S:
            await self.retain()

    async def checkpoint(self) -> None:
        appended_before = self._since_checkpoint_bytes
        check = await checkpoint_if_due(self.store, self.doc, self.policy.checkpoint_bytes)
        # What this room appended while the check ran counts towards the next one.
        self._since_checkpoint_bytes = check.since_bytes + self._since_checkpoint_bytes - appended_before
        self._due_bytes = check.due_bytes

    async def retain(self) -> int:
        self._retained_at = self.policy.clock()
        return await apply_retention(
            self.store, self.doc, self._retained_at, self.policy.keep_all_days, self.policy.hourly_days
        )

    async def close(self) -> None:
        """When the room unloads: waits for housekeeping, then folds and checkpoints what is due."""
        if self._housekeeper is not None:
            await asyncio.gather(self._housekeeper, return_exceptions=True)
        try:
            await self.retain()
            await self.checkpoint()
        except Exception as exc:  # history stays as it was: the next unload or hour tries again
            log.warning("history housekeeping for %s failed: %s", self.doc, exc)

    @staticmethod
    def _log_failure(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("history housekeeping failed: %s", task.exception())
