"""One shared document: its pycrdt replica, its clients, and the path of every update.

An update from a client is vetted, applied to the replica, appended durably to
the store and only then broadcast (group commit: whatever arrives while a write
is in flight goes out in the next one, and the batch is broadcast as one merged
update). The room knows nothing of Starlette or Redis: it talks to a `Store`, a
`Fanout` and `Peer`s.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pycrdt import Doc, Text, merge_updates

from .awareness import AwarenessEntry, AwarenessStates, decode_awareness_update, encode_awareness_update
from .fanout import Fanout
from .metrics import Metrics
from .peer import Peer
from .protocol import (
    CLOSE_INVALID_UPDATE,
    CLOSE_MALFORMED,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    AwarenessMessage,
    ProtocolError,
    QueryAwarenessMessage,
    SyncMessage,
    decode_message,
    encode_awareness,
    encode_permission_denied,
    encode_sync,
)
from .stores.base import Store
from .updates import DeleteIndex, SurrogateIndex, brings_news, decode_state_vector, parse_update

log = logging.getLogger(__name__)

TEXT_NAME = "content"
EMPTY_UPDATE = b"\x00\x00"
READ_ONLY_REFUSAL = "read-only: this link can view the document but not change it"


class Room:
    def __init__(
        self,
        name: str,
        store: Store,
        fanout: Fanout,
        metrics: Metrics,
        max_doc_bytes: int,
        compact_min_bytes: int,
    ):
        self.name = name
        self.store = store
        self.fanout = fanout
        self.metrics = metrics
        self.max_doc_bytes = max_doc_bytes
        self.compact_min_bytes = compact_min_bytes
        self.doc: Doc = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.peers: dict[int, Peer] = {}
        self.holders = 0  # connections (joined or joining) keeping the room loaded
        self.awareness = AwarenessStates()
        self.surrogates = SurrogateIndex()
        self.deleted = DeleteIndex()
        self.size_bytes = 0
        self._integrated: list[bytes] = []
        self.doc.observe(self._on_transaction)
        self._outbox: list[tuple[bytes, Peer | None]] = []
        self._flusher: asyncio.Task | None = None
        self.cursor = ""  # log position of this room's last append
        self.snapshot_bytes = 0  # size of the stored snapshot
        self.log_bytes = 0  # bytes appended on top of it
        self._compactor: asyncio.Task | None = None
        self.is_closed = False

    # --- loading -------------------------------------------------------------------

    async def load(self) -> None:
        stored = await self.store.load(self.name)
        for update in stored.updates:
            self.doc.apply_update(update)
        self._integrated.clear()
        state = self.doc.get_update()
        self._index(state)
        self.size_bytes = self.snapshot_bytes = stored.size_bytes
        self.cursor = stored.cursor
        await self.fanout.subscribe(self.name, stored.cursor, self)
        # Presence announced on other instances before we loaded is not in any log.
        await self.fanout.query_awareness(self.name)
        if len(stored.updates) > 1:
            self.compact_soon()  # fold a log left by a crash, or appended by other instances

    def _on_transaction(self, event) -> None:
        self._integrated.append(event.update)

    def _index(self, update: bytes) -> None:
        parsed = parse_update(update)
        self.surrogates.add(parsed)
        self.deleted.add(parsed)

    def _apply(self, update: bytes) -> bytes | None:
        """Applies an update; returns what it integrated, or None when it brought nothing."""
        return self._capture(lambda: self.doc.apply_update(update))

    def _capture(self, change) -> bytes | None:
        """Runs a change of the replica; returns the update it made, or None when it changed nothing."""
        self._integrated.clear()
        change()
        news = [u for u in self._integrated if u != EMPTY_UPDATE]
        self._integrated.clear()
        if not news:
            return None
        integrated = news[0] if len(news) == 1 else merge_updates(*news)
        self._index(integrated)
        return integrated

    # --- clients -------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        peer.send(encode_sync(SYNC_STEP1, self.doc.get_state()))
        present = self.awareness.snapshot()
        if present:
            peer.send(encode_awareness(encode_awareness_update(present)))

    def leave(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        gone = self.awareness.removals(peer.awareness_ids)
        if gone:
            # A client that vanished could not say goodbye: say it for it, here and elsewhere.
            self.awareness.apply(gone)
            encoded = encode_awareness_update(gone)
            self._relay_awareness(encoded, origin=None)
            self._spawn(self.fanout.publish_awareness(self.name, encoded))

    def handle(self, peer: Peer, frame: bytes) -> None:
        """Handles one frame from a client. Never raises: bad input closes that client."""
        if not peer.bucket.take():
            self.metrics.refused("rate_limited")
            peer.close(CLOSE_RATE_LIMITED, "too many messages: slow down and reconnect")
            return
        try:
            message = decode_message(frame)
            if isinstance(message, SyncMessage):
                self._handle_sync(peer, message)
            elif isinstance(message, AwarenessMessage):
                self._handle_awareness(peer, message.payload)
            elif isinstance(message, QueryAwarenessMessage):
                peer.send(encode_awareness(encode_awareness_update(self.awareness.snapshot())))
        except ProtocolError as exc:
            self.metrics.refused("malformed")
            peer.close(CLOSE_MALFORMED, f"malformed message: {exc}")

    def _handle_sync(self, peer: Peer, message: SyncMessage) -> None:
        if message.kind == SYNC_STEP1:
            try:
                missing = self.doc.get_update(message.payload)
            except Exception as exc:  # yrs rejects a state vector it cannot decode
                raise ProtocolError(f"bad state vector ({exc})") from exc
            peer.send(encode_sync(SYNC_STEP2, missing))
            return
        update = message.payload
        parsed = parse_update(update)
        if not peer.grant.can_edit:
            state = decode_state_vector(self.doc.get_state())
            if brings_news(parsed, state, self.deleted):
                self.metrics.refused("read_only")
                peer.send(encode_permission_denied(READ_ONLY_REFUSAL))
            return
        split = self.surrogates.first_split(parsed)
        if split is not None:
            self.metrics.refused("surrogate_split")
            peer.close(
                CLOSE_INVALID_UPDATE,
                "update splits a UTF-16 surrogate pair (an emoji) at client %d clock %d" % split,
            )
            return
        if parsed.structs and self.size_bytes + len(update) > self.max_doc_bytes:
            self.metrics.refused("doc_too_large")
            peer.close(CLOSE_TOO_LARGE, f"document would exceed {self.max_doc_bytes} bytes")
            return
        try:
            integrated = self._apply(update)
        except Exception as exc:  # yrs refused it: nothing was applied
            raise ProtocolError(f"update rejected by the CRDT ({exc})") from exc
        if integrated is not None:
            self.metrics.update_received(len(integrated))
            self._enqueue(integrated, peer)

    def _handle_awareness(self, peer: Peer, payload: bytes) -> None:
        entries = decode_awareness_update(payload)
        news = self.awareness.apply(entries)
        for entry in news:
            if entry.is_removal:
                peer.awareness_ids.discard(entry.client_id)
            else:
                peer.awareness_ids.add(entry.client_id)
        if news:
            encoded = encode_awareness_update(news)
            self._relay_awareness(encoded, origin=peer)
            self._spawn(self.fanout.publish_awareness(self.name, encoded))

    def _relay_awareness(self, payload: bytes, origin: Peer | None) -> None:
        frame = encode_awareness(payload)
        for peer in list(self.peers.values()):
            if peer is not origin:
                peer.send(frame)

    # --- changes made by the server itself (redrafts) -----------------------------------------

    def local_change(self, change) -> bool:
        """Runs `change()` on the replica (e.g. a redraft's merge inside its own transaction origin, or an
        undo) and sends what it made down the same path as a client's update: stored, then broadcast to
        everyone. Returns whether anything changed."""
        integrated = self._capture(change)
        if integrated is None:
            return False
        self.metrics.update_received(len(integrated), source="server")
        self._enqueue(integrated, None)
        return True

    def publish_awareness(self, entry: AwarenessEntry) -> None:
        """An awareness state of the server's own (the AI peer): to every client, here and on other instances."""
        news = self.awareness.apply([entry])
        if news:
            encoded = encode_awareness_update(news)
            self._relay_awareness(encoded, origin=None)
            self._spawn(self.fanout.publish_awareness(self.name, encoded))

    # --- the write path ----------------------------------------------------------------

    def _enqueue(self, update: bytes, origin: Peer | None) -> None:
        self.size_bytes += len(update)
        self._outbox.append((update, origin))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        retry_s = 0.05
        while self._outbox:
            batch = list(self._outbox)
            origins = {origin for _, origin in batch}
            # One merged update per batch: one log row and one frame per client per write,
            # however many edits arrived while the previous write was in flight.
            update = batch[0][0] if len(batch) == 1 else merge_updates(*(u for u, _ in batch))
            started = time.perf_counter()
            try:
                self.cursor = await self.store.append(self.name, [update])
            except Exception as exc:
                # Keep the batch and retry: it is in memory and was never broadcast.
                log.error("store append for %s failed, retrying in %.2fs: %s", self.name, retry_s, exc)
                self.metrics.store_error()
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, 2.0)
                continue
            retry_s = 0.05
            self.metrics.store_append(time.perf_counter() - started)
            del self._outbox[: len(batch)]
            # With several originators each gets its own edits back inside the merge, which Yjs ignores.
            self._broadcast(update, origins.pop() if len(origins) == 1 else None)
            self.log_bytes += len(update)
            if self.log_bytes >= max(self.compact_min_bytes, self.snapshot_bytes):
                self.compact_soon()

    def _broadcast(self, update: bytes, origin: Peer | None) -> None:
        frame = encode_sync(SYNC_UPDATE, update)
        for peer in list(self.peers.values()):
            if peer is not origin:
                peer.send(frame)
        self.metrics.broadcast(len(frame), len(self.peers))

    # --- fan-out from other instances ----------------------------------------------------

    def on_remote_update(self, update: bytes) -> None:
        integrated = self._apply(update)
        if integrated is None:
            return
        self.size_bytes += len(integrated)
        self.metrics.update_received(len(integrated), source="remote")
        self._broadcast(integrated, None)

    def on_awareness_query(self) -> None:
        present = self.awareness.snapshot()
        if present:
            self._spawn(self.fanout.publish_awareness(self.name, encode_awareness_update(present)))

    def on_remote_awareness(self, payload: bytes) -> None:
        news = self.awareness.apply(decode_awareness_update(payload))
        if news:
            self._relay_awareness(encode_awareness_update(news), origin=None)

    # --- housekeeping ------------------------------------------------------------------

    def compact_soon(self) -> None:
        if self._compactor is None or self._compactor.done():
            self._compactor = asyncio.get_running_loop().create_task(self._compact())

    async def _compact(self) -> None:
        """Replaces the log with a snapshot of the replica in memory.

        Compacting when the log outgrows the snapshot keeps the cost proportional to what
        was appended; taking the snapshot from memory (a few ms for 150k edits) avoids
        re-reading and replaying the log, which at 8,000 edits/s on one document made
        appends 30x slower (bench/collab.py, 2026-11-27).
        """
        if not self.cursor:
            return  # nothing was ever stored
        snapshot = self.doc.get_update()
        upto = self.fanout.covered(self.name, self.cursor)
        log_bytes_before = self.log_bytes
        try:
            await self.store.compact(self.name, snapshot, upto)
        except Exception as exc:
            log.warning("compacting %s failed (the log stays as it is): %s", self.name, exc)
            return
        # What was appended meanwhile stays in the log, on top of the new snapshot.
        self.snapshot_bytes = len(snapshot)
        self.log_bytes -= log_bytes_before
        self.size_bytes = self.snapshot_bytes + self.log_bytes

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_failure)

    async def flush(self) -> None:
        """Waits until every applied update is in the store."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Flushes, compacts and stops listening; the room can then be dropped."""
        self.is_closed = True
        await self.flush()
        if self._compactor is not None:
            await asyncio.gather(self._compactor, return_exceptions=True)
        if self.log_bytes:
            await self._compact()
        await self.fanout.unsubscribe(self.name)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task failed: %s", task.exception())
