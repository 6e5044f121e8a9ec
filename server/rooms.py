"""Loaded rooms: loaded on first join, kept for a grace period after the last leaves.

Two clients opening a new document at the same moment share one load (a lock
per name); a client joining during the grace period finds the room still warm;
an unload flushes and compacts before the room is dropped. A room nobody wrote
to is dropped as soon as its last client leaves: opening 2,000 names of empty
documents kept 2,000 rooms for the grace period (issue 14).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections import defaultdict

from .awareness_trust import DEFAULT_MAX_STATE_BYTES
from .fanout import Fanout
from .history.recorder import HISTORY_OFF, HistoryPolicy
from .metrics import Metrics
from .room import DEFAULT_MAX_UNSTORED_BYTES, Room
from .stores.base import Store

log = logging.getLogger(__name__)

# Unloading a document frees its replica, but glibc keeps the freed heap for reuse: after an 8 MB document's
# unload RSS stays at its loaded level (108 MiB) until malloc_trim hands ~25 MiB back (83 MiB), in 3-8 ms.
# Worth it only after large documents, which unload rarely.
TRIM_AFTER_BYTES = 1 << 20


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class RoomManager:
    def __init__(
        self,
        store: Store,
        fanout: Fanout,
        metrics: Metrics,
        max_doc_bytes: int,
        compact_min_bytes: int,
        grace_s: float,
        *,
        max_pending_bytes: int,
        max_awareness_bytes: int = DEFAULT_MAX_STATE_BYTES,
        history: HistoryPolicy = HISTORY_OFF,
        max_unstored_bytes: int = DEFAULT_MAX_UNSTORED_BYTES,
    ):
        self.store = store
        self.fanout = fanout
        self.metrics = metrics
        self.max_doc_bytes = max_doc_bytes
        self.compact_min_bytes = compact_min_bytes
        self.grace_s = grace_s
        self.max_pending_bytes = max_pending_bytes
        self.max_awareness_bytes = max_awareness_bytes
        self.history = history
        self.max_unstored_bytes = max_unstored_bytes
        self.rooms: dict[str, Room] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._unload_timers: dict[str, asyncio.TimerHandle] = {}
        self._unloading: set[asyncio.Task] = set()
        self.unload_listeners: list = []  # called with the document's name after its room is unloaded

    async def acquire(self, name: str) -> Room:
        """The loaded room, loading it if needed; the caller holds it until `release`."""
        timer = self._unload_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        room = self.rooms.get(name)
        if room is None or room.is_closed:
            async with self._locks[name]:
                room = self.rooms.get(name)
                if room is None or room.is_closed:
                    room = Room(
                        name,
                        self.store,
                        self.fanout,
                        self.metrics,
                        self.max_doc_bytes,
                        self.compact_min_bytes,
                        self.max_pending_bytes,
                        self.max_awareness_bytes,
                        self.history,
                        self.max_unstored_bytes,
                    )
                    await room.load()
                    self.rooms[name] = room
                    self.metrics.rooms.set(len(self.rooms))
        # Held from here, before the handshake completes, so no unload can slip in between.
        room.holders += 1
        return room

    def loaded(self, name: str) -> Room | None:
        """The room loaded for `name` (it may be closing: see `is_closed`), or None; never loads one."""
        return self.rooms.get(name)

    def release(self, room: Room) -> None:
        """Called when a holder is done: starts the grace period if it was the last one."""
        room.holders -= 1
        if room.holders > 0 or room.is_closed or room.name in self._unload_timers:
            return
        loop = asyncio.get_running_loop()
        grace_s = self.grace_s if room.is_written else 0.0  # reloading an empty document costs nothing
        self._unload_timers[room.name] = loop.call_later(grace_s, self._start_unload, room)

    def _start_unload(self, room: Room) -> None:
        self._unload_timers.pop(room.name, None)
        task = asyncio.get_running_loop().create_task(self._unload(room))
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _unload(self, room: Room) -> None:
        async with self._locks[room.name]:
            if room.holders > 0 or self.rooms.get(room.name) is not room:
                return
            try:
                await room.close()
            finally:
                # The lock stays: a waiter may hold it already, and a fresh one would
                # let two loads of the same document run at once.
                del self.rooms[room.name]
                self.metrics.rooms.set(len(self.rooms))
                for listener in self.unload_listeners:
                    listener(room.name)
        if room.compacted_bytes >= TRIM_AFTER_BYTES:
            _trim_heap()
        log.info("unloaded %s", room.name)

    async def close(self) -> None:
        """Flushes every room (server shutdown); clients were closed before."""
        for timer in self._unload_timers.values():
            timer.cancel()
        self._unload_timers.clear()
        await asyncio.gather(*self._unloading, return_exceptions=True)
        for room in list(self.rooms.values()):
            try:
                await room.close()
            except Exception:
                log.exception("closing %s failed", room.name)
        self.rooms.clear()
