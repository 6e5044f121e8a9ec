"""One shared document: its pycrdt replica, its clients, and the path of every update.

An update from a client is vetted, applied to the replica, appended durably to
the store and only then broadcast (group commit: whatever arrives while a write
is in flight goes out in the next one, and the batch is broadcast as one merged
update). With history on, the same append records who made each part of the
batch and why (server/history), so a broadcast update always has its entry.
The room knows nothing of Starlette or Redis: it talks to a `Store`, a
`Fanout` and `Peer`s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, NamedTuple

from pycrdt import Doc, Text

from .awareness import AwarenessEntry, encode_awareness_update
from .awareness_trust import DEFAULT_MAX_STATE_BYTES, RoomAwareness, role_of
from .budgets import PendingUpdates, extra_bytes, first_missing, growth_bytes, integrates_whole
from .fanout import Fanout
from .history.entry import ANONYMOUS_AUTHOR, SERVER_AUTHOR, TYPING, Author, Change, Origin
from .history.recorder import HISTORY_OFF, HistoryPolicy, HistoryRecorder
from .metrics import Metrics
from .peer import Peer
from .protocol import (
    CLOSE_INVALID_UPDATE,
    CLOSE_MALFORMED,
    CLOSE_PENDING_FULL,
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
from .update_merge import merge_all
from .updates import (
    DeleteIndex,
    ParsedUpdate,
    SurrogateIndex,
    advance_clocks,
    brings_news,
    decode_state_vector,
    parse_update,
)
from .yrs_apply import STRETCH_BYTES, STRETCH_UPDATES, apply_all_unobserved, apply_unobserved

log = logging.getLogger(__name__)

TEXT_NAME = "content"
EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE_VECTOR = b"\x00"  # a client that has nothing yet
READ_ONLY_REFUSAL = "read-only: this link can view the document but not change it"
DEFAULT_MAX_UNSTORED_BYTES = 4 << 20
AWARENESS_HOLD_S = 0.05  # the longest an awareness update waits to go out with the updates on their way


class Relay(NamedTuple):
    """An awareness update on its way to the room's clients (`Room._relay_awareness`)."""

    frame: bytes
    ids: set[int]  # the client ids it speaks for
    origin: Peer | None  # the connection it came from
    entries: list[AwarenessEntry]


class TooLarge(Exception):
    """A change the server would make takes the document over max_doc_bytes; nothing was applied."""

    def __init__(self, max_doc_bytes: int):
        super().__init__(f"the document would exceed {max_doc_bytes} bytes")


class Room:
    def __init__(
        self,
        name: str,
        store: Store,
        fanout: Fanout,
        metrics: Metrics,
        max_doc_bytes: int,
        compact_min_bytes: int,
        max_pending_bytes: int,
        max_awareness_bytes: int = DEFAULT_MAX_STATE_BYTES,
        history: HistoryPolicy = HISTORY_OFF,
        max_unstored_bytes: int = DEFAULT_MAX_UNSTORED_BYTES,
    ):
        self.name = name
        self.store = store
        self.fanout = fanout
        self.metrics = metrics
        self.max_doc_bytes = max_doc_bytes
        self.compact_min_bytes = compact_min_bytes
        self.max_pending_bytes = max_pending_bytes
        self._doc: Doc = Doc()
        self._text = self._doc.get(TEXT_NAME, type=Text)
        self._unsettled: list[bytes] = []  # accepted, vetted keystrokes not yet applied to _doc (`_defer`)
        self._unsettled_bytes = 0
        self.peers: dict[int, Peer] = {}
        self.holders = 0  # connections (joined or joining) keeping the room loaded
        self.awareness = RoomAwareness(max_awareness_bytes)
        self.surrogates = SurrogateIndex()
        self.deleted = DeleteIndex()
        self.clocks: dict[int, int] = {}  # the replica's state vector, kept up to date from what it integrates
        self.pending = PendingUpdates()  # accepted updates yrs holds until what they need arrives
        self._text_observers = 0  # `observe_text` subscriptions: while there are any, pycrdt applies every update
        # At most what a compaction would store now, the size the limit is on: measured, plus since then each
        # integrated update and what its cuts of existing items may add.
        self.compacted_bytes = 0
        self.version = 0  # integrations so far: a measurement of compacted_bytes is good until this moves
        self._measured_version = -1
        self._full_step2: tuple[int, bytes] = (-1, b"")  # (version, sync step 2 frame of the whole document)
        self.history = history
        self.recorder = HistoryRecorder(store, name, history) if history.is_on else None
        self._outbox: list[tuple[bytes, Peer | None, Change | None]] = []
        self._flusher: asyncio.Task | None = None
        # Relays waiting for the updates on their way to the store, each with the count of updates enqueued before
        # it arrived: it goes out with the broadcast of the batch that holds the last of them.
        self._held_awareness: list[tuple[int, Relay]] = []
        self._enqueued = 0  # updates ever enqueued
        self._awareness_timer: asyncio.TimerHandle | None = None
        # Integrated but not yet stored: the outbox and the batch being appended. Past max_unstored_bytes the
        # room's clients stop being read (`is_backlogged`, `when_drained`) until the store catches up.
        self.max_unstored_bytes = max_unstored_bytes
        self.unstored_bytes = 0
        self._drain_waiters: list[Callable[[], None]] = []
        self.cursor = ""  # log position of this room's last append
        self.snapshot_bytes = 0  # size of the stored snapshot
        self.log_bytes = 0  # bytes appended on top of it
        self._compactor: asyncio.Task | None = None
        self.is_closed = False
        self.is_written = False  # the document has content, stored or on its way: else unloading loses nothing

    # --- the replica -------------------------------------------------------------------

    @property
    def doc(self) -> Doc:
        """The replica, holding every update the room accepted (those deferred are applied first)."""
        if self._unsettled:
            self._settle()
        return self._doc

    @property
    def text(self) -> Text:
        """The replica's text (as `doc`: up to date)."""
        if self._unsettled:
            self._settle()
        return self._text

    def _defer(self, update: bytes) -> None:
        """Accepts a keystroke into the replica later: it is vetted, indexed and integrates whole as sent, so
        the room's state (clocks, indexes, the batch to store and broadcast) does not wait for yrs. Anything
        that reads the replica applies what waits first (`doc`, `text`), in order.

        At the ramp's top yrs' apply was a quarter of the event loop's Python: each keystroke's commit merged
        it into its typist's run and counted that whole run (yrs_apply). Applied a stretch at a time, a run
        is merged once per typist per stretch."""
        self._unsettled.append(update)
        self._unsettled_bytes += len(update)
        if len(self._unsettled) >= STRETCH_UPDATES or self._unsettled_bytes >= STRETCH_BYTES:
            self._settle()

    def _settle(self) -> None:
        updates, self._unsettled, self._unsettled_bytes = self._unsettled, [], 0
        try:
            apply_all_unobserved(self._doc, updates)
        except Exception:  # each was read whole as typing, with all it needs already here: never, unless a bug
            for update in updates:  # those already in are no-ops; the rest go in, all but the refused
                try:
                    apply_unobserved(self._doc, update)
                except Exception:
                    log.exception("the replica of %s refused a keystroke that was accepted and stored", self.name)

    # --- loading -------------------------------------------------------------------

    async def load(self) -> None:
        stored = await self.store.load(self.name)
        for update in stored.updates:
            self.doc.apply_update(update)
        state = self.doc.get_update()
        self._index(parse_update(state, strict=False))
        self.compacted_bytes, self._measured_version = len(state), self.version
        self.snapshot_bytes = stored.size_bytes
        self.cursor = stored.cursor
        self.is_written = bool(stored.updates)
        if self.recorder is not None and stored.updates:
            await self.recorder.on_load(state)
        await self.fanout.subscribe(self.name, stored.cursor, self)
        # Presence announced on other instances before we loaded is not in any log.
        await self.fanout.query_awareness(self.name)
        if len(stored.updates) > 1:
            self.compact_soon()  # fold a log left by a crash, or appended by other instances

    def _index(self, parsed: ParsedUpdate) -> None:
        """Learns what the replica integrated: what yrs wrote, or an update found to integrate whole as sent
        (`integrates_whole`), never a client's word alone."""
        self.surrogates.add(parsed)
        self.deleted.add(parsed)
        advance_clocks(self.clocks, parsed)
        self.version += 1
        held = self.pending.num_bytes
        self.pending.advance(parsed, self.clocks)
        if self.pending.num_bytes != held:
            self.metrics.pending_bytes.inc(self.pending.num_bytes - held)

    def _integrates_whole(self, parsed: ParsedUpdate) -> bool:
        """Whether applying the update integrates exactly it (`integrates_whole`), with nothing held pending to
        come free alongside."""
        return self.pending.num_bytes == 0 and integrates_whole(parsed, self.clocks)

    def _apply(self, update: bytes, parsed: ParsedUpdate | None = None, is_whole: bool = False) -> bytes | None:
        """Applies an update (`parsed`: its parse, when the caller has it); returns what it integrated, or None
        when it brought nothing. `is_whole`: the caller found that it `_integrates_whole`, so what it integrated
        is the update itself, and the transaction is not observed (yrs' cleanup event costs twice the apply)."""
        if not is_whole:
            return self._capture(lambda: self.doc.apply_update(update), (update, parsed) if parsed else None)
        if self._text_observers:  # a redraft's watcher: pycrdt calls it in its own transaction and raises its errors
            self.doc.apply_update(update)
        elif parsed is not None and parsed.is_typing:
            self._defer(update)
        else:
            apply_unobserved(self.doc, update)
        self._integrated(update, parsed)
        return update

    def _capture(self, change, known: tuple[bytes, ParsedUpdate] | None = None) -> bytes | None:
        """Runs a change of the replica; returns the update it made, or None when it changed nothing."""
        made: list[bytes] = []
        # Observed only for as long as the change runs: no transaction pays for the event otherwise, and yrs
        # holds no reference to the room (it would keep an unloaded room and its replica alive).
        subscription = self.doc.observe(lambda event: made.append(event.update))
        try:
            change()
        finally:
            self.doc.unobserve(subscription)
        news = [u for u in made if u != EMPTY_UPDATE]
        if not news:
            return None
        integrated = merge_all(news)
        # An update usually integrates exactly as sent (yrs writes the same bytes back): its parse is reused.
        self._integrated(integrated, known[1] if known and integrated == known[0] else None)
        return integrated

    def _integrated(self, integrated: bytes, parsed: ParsedUpdate | None) -> None:
        """Accounts for what the replica integrated (`parsed`: its parse, when known)."""
        parsed = parsed or parse_update(integrated, strict=False)
        self.is_written = True
        self._index(parsed)
        self.compacted_bytes += len(integrated) + extra_bytes(parsed)

    # --- clients -------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        peer.send(encode_sync(SYNC_STEP1, self.doc.get_state()))
        # Who is here follows the client's first message after its sync step 1 (`_send_presence`).

    def leave(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        # A client that vanished could not say goodbye: say it for it (its own id only), here and elsewhere.
        gone = self.awareness.leave(peer)
        if gone:
            self._share_awareness(gone, origin=None)

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
                self._send_presence(peer)
            if not peer.has_awareness_snapshot and not (isinstance(message, SyncMessage) and message.kind == SYNC_STEP1):
                self._send_presence(peer)
        except ProtocolError as exc:
            self.metrics.refused("malformed")
            peer.close(CLOSE_MALFORMED, f"malformed message: {exc}")

    def _handle_sync(self, peer: Peer, message: SyncMessage) -> None:
        if message.kind == SYNC_STEP1:
            peer.send(self._sync_step2(message.payload))
            return
        update = message.payload
        parsed = parse_update(update)
        if not peer.grant.can_edit:
            if brings_news(parsed, self.clocks, self.deleted):
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
        is_whole = self._integrates_whole(parsed)
        missing = None if is_whole else first_missing(parsed, self.clocks)
        if missing is not None and self.pending.num_bytes + len(update) > self.max_pending_bytes:
            self.metrics.refused("pending_full")
            peer.close(
                CLOSE_PENDING_FULL,
                "update needs client %d clock %d, which the server does not have: reconnect to resync" % missing,
            )
            return
        growth = growth_bytes(parsed, self.clocks, self.deleted)
        if growth and not self.fits(growth, update):
            self.metrics.refused("doc_too_large")
            peer.close(CLOSE_TOO_LARGE, f"document would exceed {self.max_doc_bytes} bytes")
            return
        try:
            integrated = self._apply(update, parsed, is_whole)
        except Exception as exc:  # yrs refused it: nothing was applied
            raise ProtocolError(f"update rejected by the CRDT ({exc})") from exc
        if missing is not None:
            # yrs holds it until what it needs arrives: usually the same client's sync step 2, a moment later
            # (a keystroke sent while its offline edits wait for the server's step 1).
            self._hold_if_waiting(update, parsed)
        if integrated is not None:
            self.metrics.update_received(len(integrated))
            self._enqueue(integrated, peer, peer.change(self.history.instance_id) if self.recorder else None)

    def _sync_step2(self, state_vector: bytes) -> bytes:
        """The answer to a client's sync step 1: what it lacks. A new client lacks everything, and the whole
        document is encoded once per version for all of them: 200 joiners of a 1 MB document cost one encoding
        and share one frame (issue 21's join storm), instead of 200 encodings and 200 copies."""
        if state_vector == EMPTY_STATE_VECTOR and self._full_step2[0] == self.version:
            return self._full_step2[1]
        try:
            missing = self.doc.get_update(state_vector)
        except Exception as exc:  # yrs rejects a state vector it cannot decode
            raise ProtocolError(f"bad state vector ({exc})") from exc
        frame = encode_sync(SYNC_STEP2, missing)
        if state_vector == EMPTY_STATE_VECTOR:
            self._full_step2 = (self.version, frame)
        return frame

    def _send_presence(self, peer: Peer) -> None:
        """Who is here, for a joining client. A stock client sends its own state right after its sync step 1,
        so by its next message the server knows its id and leaves it out: someone holding that id while the
        client was away would otherwise become the client's own state (y-protocols adopts a higher clock)."""
        peer.has_awareness_snapshot = True
        present = self.awareness.snapshot_for(peer)
        if present:
            peer.send(encode_awareness(encode_awareness_update(present)))

    def _handle_awareness(self, peer: Peer, payload: bytes) -> None:
        # It also gives the peer the user its own state names: the name its edits are recorded under.
        news, refused = self.awareness.from_client(peer, role_of(peer.grant.can_edit), payload)
        self._count_refusals(refused)
        if news:
            self._share_awareness(news, origin=peer)

    def _count_refusals(self, refused) -> None:
        for reason, count in refused.items():
            self.metrics.refusals.labels(reason).inc(count)

    def _share_awareness(self, entries: list[AwarenessEntry], origin: Peer | None) -> None:
        """To every client here but the origin, and to the other instances."""
        payload = encode_awareness_update(entries)
        self._relay_awareness(entries, origin, payload)
        self.fanout.publish_awareness(self.name, payload)

    def _relay_awareness(self, entries: list[AwarenessEntry], origin: Peer | None, payload: bytes) -> None:
        """To every client here but the origin (`payload`: the entries encoded). While updates are on their way
        to the store, it waits for the batch holding those that came before it and goes out with that batch's
        broadcast (`_broadcast`): the editor sends its cursor right after each keystroke, pointing into the text
        it just typed, and the two then reach each client together, in one write instead of two, never the
        cursor first. It waits AWARENESS_HOLD_S at most, so a store that stalls does not freeze presence."""
        ids = {entry.client_id for entry in entries}
        self._held_awareness.append((self._enqueued, Relay(encode_awareness(payload), ids, origin, entries)))
        if self._flusher is None or self._flusher.done():
            self._release_awareness()
        elif self._awareness_timer is None:
            self._awareness_timer = asyncio.get_running_loop().call_later(AWARENESS_HOLD_S, self._release_awareness)

    def _take_awareness(self, upto: int | None = None) -> list[Relay]:
        """The held relays that came after no more than `upto` enqueued updates (all of them: None)."""
        if upto is None:
            taken, self._held_awareness = [relay for _, relay in self._held_awareness], []
        else:
            taken = [relay for after, relay in self._held_awareness if after <= upto]
            self._held_awareness = [(after, relay) for after, relay in self._held_awareness if after > upto]
        if not self._held_awareness and self._awareness_timer is not None:
            self._awareness_timer.cancel()
            self._awareness_timer = None
        return taken

    def _release_awareness(self) -> None:
        self._send_with_awareness(self._take_awareness())

    def _send_with_awareness(self, held: list[Relay], frame: bytes | None = None, origin: Peer | None = None) -> None:
        """`frame` (an update from `origin`, when given) and then the awareness `held` to every client, each in one
        write. Most clients get the same frames; only the relays' origins and the owners of their client ids get
        their own selection (`_awareness_for`)."""
        ids = set().union(*(relay.ids for relay in held))
        special = {relay.origin for relay in held}
        special.add(origin)
        common = [relay.frame for relay in held]
        if frame is not None:
            common.insert(0, frame)
        for peer in list(self.peers.values()):
            if peer in special or peer.awareness_id in ids:
                frames = _awareness_for(peer, held)
                if frame is not None and peer is not origin:
                    frames.insert(0, frame)
                peer.send_all(frames)
            else:
                peer.send_all(common)

    def fits(self, growth: int, update: bytes | None = None) -> bool:
        """Whether the document stays within max_doc_bytes after a change that adds at most `growth` bytes
        (`update`, when given, is the change itself).

        The limit is on the document as a compaction stores it, which is also what a joining client downloads:
        every update counts, GC-only and delete-only ones too (issue 14: 683 KB GC-only updates grew a 100 KB
        document to 5.2 MB and then refused every insert). The log appended on top of the snapshot is bounded
        by compaction instead (it starts once the log outgrows the snapshot), so text typed and deleted again
        never fills a document. The bound kept in compacted_bytes runs ahead of the truth (every possible cut
        counts); when it says no, the document is measured (15 ms for 8 MB, once per change of it), and when
        that says no too, the update is tried on a copy: exact, and paid only at the limit. A change that does
        not grow the document always goes in, so a full document can be cleaned up.
        """
        if self.compacted_bytes + growth <= self.max_doc_bytes:
            return True
        state = None
        if self._measured_version != self.version:
            state = self.doc.get_update()
            self.compacted_bytes, self._measured_version = len(state), self.version
        if self.compacted_bytes + growth <= self.max_doc_bytes or update is None:
            return self.compacted_bytes + growth <= self.max_doc_bytes
        trial = Doc()
        trial.apply_update(state if state is not None else self.doc.get_update())  # encoded once at the limit
        try:
            trial.apply_update(update)
        except Exception as exc:  # yrs refuses it: so would the replica
            raise ProtocolError(f"update rejected by the CRDT ({exc})") from exc
        return len(trial.get_update()) <= max(self.max_doc_bytes, self.compacted_bytes)

    # --- reading the document -------------------------------------------------------------

    @property
    def is_blank(self) -> bool:
        """Nothing was ever written to the document (it has never been edited)."""
        return self.doc.get_state() == EMPTY_STATE_VECTOR

    def read_text(self) -> str:
        return str(self.text)

    def snapshot(self) -> tuple[bytes, str]:
        """One state of the document: its full update and its text, taken together (a redraft's fork)."""
        return self.doc.get_update(), str(self.text)

    def writers(self) -> set[int]:
        """The client ids that wrote to the replica: a writer the server makes must not reuse one."""
        return set(decode_state_vector(self.doc.get_state()))

    def observe_text(self, callback) -> object:
        """Calls `callback(event)` inside every transaction that changes the text; returns the subscription."""
        self._text_observers += 1
        return self.text.observe(callback)

    def unobserve_text(self, subscription: object) -> None:
        self.text.unobserve(subscription)
        self._text_observers -= 1

    # --- changes made by the server itself (redrafts) -----------------------------------------

    def require_fit(self, growth: int, update: bytes | None = None) -> None:
        """`fits`, for a change the server makes: raises TooLarge when it does not. The limit is on the stored
        document, as for a client's update (the log, which compaction folds away, does not count)."""
        if not self.fits(growth, update):
            raise TooLarge(self.max_doc_bytes)

    def apply_server_update(self, update: bytes, transaction_origin: str, author: Author, origin: Origin) -> None:
        """Applies an update the server made elsewhere (a redraft's merge, made on its fork) in one transaction
        under `transaction_origin`, within max_doc_bytes (else TooLarge, nothing applied), then stores and
        broadcasts it like a client's (`local_change`)."""
        self.require_fit(len(update), update)

        def apply() -> None:
            with self.doc.transaction(origin=transaction_origin):
                self.doc.apply_update(update)

        self.local_change(apply, author=author, origin=origin)

    def replace_text(
        self, value: str, edits: list[tuple[int, int, str]], transaction_origin: str, author: Author, origin: Origin
    ) -> None:
        """Makes `edits` (start, end, replacement: code points of `value`, the text now, ascending) in one
        transaction under `transaction_origin`, within max_doc_bytes (else TooLarge, nothing applied), then
        stores and broadcasts them like a client's (`local_change`). An undo or redo of a redraft."""
        self.require_fit(sum(len(text.encode()) for _, _, text in edits))

        def apply() -> None:
            # pycrdt 0.14 indexes Text edits by UTF-8 bytes
            with self.doc.transaction(origin=transaction_origin):
                for start, end, text in reversed(edits):  # last first: earlier offsets stay valid
                    at = len(value[:start].encode())
                    if text:
                        self.text.insert(at, text)
                    if end > start:
                        offset = at + len(text.encode())
                        del self.text[offset : offset + len(value[start:end].encode())]

        self.local_change(apply, author=author, origin=origin)

    def local_change(self, change, author: Author = SERVER_AUTHOR, origin: Origin = TYPING) -> bool:
        """Runs `change()` on the replica (e.g. a redraft's merge inside its own transaction origin, or an
        undo) and sends what it made down the same path as a client's update: stored (recorded in history
        under `author` and `origin`), then broadcast to everyone. Returns whether anything changed."""
        integrated = self._capture(change)
        if integrated is None:
            return False
        self.metrics.update_received(len(integrated), source="server")
        self._enqueue(integrated, None, Change(author, origin, None))
        return True

    def publish_awareness(self, entry: AwarenessEntry) -> None:
        """An awareness state of the server's own (the AI peer): to every client, here and on other instances."""
        news = self.awareness.from_server_peer(entry)
        if news:
            self._share_awareness(news, origin=None)

    # --- the write path ----------------------------------------------------------------

    @property
    def is_backlogged(self) -> bool:
        """More is waiting to be stored than max_unstored_bytes: whoever sent it should stop sending."""
        return self.unstored_bytes > self.max_unstored_bytes

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once the unstored backlog is down to half of max_unstored_bytes.

        Updates are acknowledged to no one, so a client can send them faster than the store writes them,
        and every one waits in memory until it is stored: one client sending 900 KB updates at the message
        rate allowed took the server past 1.2 GB in 12 s. A connection that finds the room backlogged stops
        being read until then; TCP holds the rest on the client's side, and nothing is refused or lost."""
        self._drain_waiters.append(callback)

    def _enqueue(self, update: bytes, origin: Peer | None, change: Change | None) -> None:
        self._outbox.append((update, origin, change))
        self._enqueued += 1
        self.unstored_bytes += len(update)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        retry_s = 0.05
        # One turn of the loop first: the frames already read from other sockets join this batch. Under load
        # batches double and fan-out frames fall by a third (50 clients x 80 edits/s: 52,000 -> 37,000 frames/s,
        # 0.86 -> 0.71 cores); an idle room pays one loop turn, some microseconds.
        await asyncio.sleep(0)
        while self._outbox:
            batch, upto = list(self._outbox), self._enqueued
            origins = {origin for _, origin, _ in batch}
            # One merged update per batch: one log row and one frame per client per write,
            # however many edits arrived while the previous write was in flight.
            update = merge_all([u for u, _, _ in batch])
            # Its history entries go in the same atomic append: an update broadcast has its entry.
            entries = self.recorder.drafts([(u, c) for u, _, c in batch], update) if self.recorder else []
            started = time.perf_counter()
            try:
                if entries:
                    self.cursor = await self.store.append(self.name, [update], history=entries)
                else:
                    self.cursor = await self.store.append(self.name, [update])
            except Exception as exc:
                # Keep the batch and retry: it is in memory and was never broadcast.
                log.error("store append for %s failed, retrying in %.2fs: %s", self.name, retry_s, exc)
                self.metrics.store_error()
                self._release_awareness()  # presence goes on while the store is down
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, 2.0)
                continue
            retry_s = 0.05
            self.metrics.store_append(time.perf_counter() - started)
            del self._outbox[: len(batch)]
            self.unstored_bytes -= sum(len(u) for u, _, _ in batch)
            if self._drain_waiters and self.unstored_bytes <= self.max_unstored_bytes // 2:
                waiters, self._drain_waiters = self._drain_waiters, []
                for resume in waiters:
                    resume()
            # With several originators each gets its own edits back inside the merge, which Yjs ignores.
            self._broadcast(update, origins.pop() if len(origins) == 1 else None, upto)
            self.log_bytes += len(update)
            if entries:
                self.recorder.recorded(entries)
            if self.log_bytes >= max(self.compact_min_bytes, self.snapshot_bytes):
                self.compact_soon()

    def _broadcast(self, update: bytes, origin: Peer | None, upto: int | None = None) -> None:
        """The update to every client but its origin; with `upto` (a batch from the outbox, which held the
        updates enqueued up to that count), the awareness held for it too (`_relay_awareness`)."""
        frame = encode_sync(SYNC_UPDATE, update)
        held = self._take_awareness(upto) if upto is not None and self._held_awareness else None
        if held:
            self._send_with_awareness(held, frame, origin)
        else:
            for peer in list(self.peers.values()):
                if peer is not origin:
                    peer.send(frame)
        self.metrics.broadcast(len(frame), len(self.peers))

    # --- fan-out from other instances ----------------------------------------------------

    def on_remote_update(self, update: bytes) -> None:
        held = self.pending.num_bytes
        integrated = self._apply(update)
        completed = self.pending.num_bytes < held
        if integrated != update:
            self._hold_remote_if_waiting(update)
        if integrated is None:
            return
        self.metrics.update_received(len(integrated), source="remote")
        if completed:
            # It completed updates our own clients sent ahead of what they needed: yrs integrated them in
            # the same transaction, and they are in no log yet. Stored with it (the remote part repeats
            # harmlessly), or the other instances would never see them. Whose they were is no longer known.
            self._enqueue(integrated, None, Change(ANONYMOUS_AUTHOR, TYPING, None) if self.recorder else None)
            return
        self._broadcast(integrated, None)

    def _hold_if_waiting(self, update: bytes, parsed: ParsedUpdate) -> tuple[int, int] | None:
        """After applying `update`: files it under what it still waits for, if anything (yrs holds that part
        until it arrives), and returns that id."""
        missing = first_missing(parsed, self.clocks)
        if missing is not None:
            self.pending.hold(len(update), parsed, missing)
            self.metrics.pending_bytes.inc(len(update))
        return missing

    def _hold_remote_if_waiting(self, update: bytes) -> None:
        """`_hold_if_waiting` for an update from another instance: the log's order should make waiting
        impossible, but a keystroke must not then integrate what comes free unobserved (`_apply`)."""
        try:
            parsed = parse_update(update, strict=False)
        except ProtocolError:
            return
        missing = self._hold_if_waiting(update, parsed)
        if missing is not None:
            log.warning("an update from another instance for %s waits for client %d clock %d", self.name, *missing)

    def on_awareness_query(self) -> None:
        present = self.awareness.authoritative()  # each instance answers for its own clients and peers
        if present:
            self.fanout.publish_awareness(self.name, encode_awareness_update(present))

    def on_remote_awareness(self, payload: bytes, sender: str) -> None:
        try:
            news, refused = self.awareness.from_remote(sender, payload)
        except ProtocolError as exc:
            log.warning("malformed awareness from instance %s for %s: %s", sender, self.name, exc)
            self.metrics.refused("remote_awareness_malformed")
            return
        self._count_refusals(refused)
        if news:
            self._relay_awareness(news, None, encode_awareness_update(news))

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
        self.compacted_bytes, self._measured_version = len(snapshot), self.version
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
        if self.recorder is not None:
            await self.recorder.close()
        await self.fanout.unsubscribe(self.name)
        self.metrics.pending_bytes.dec(self.pending.num_bytes)  # dropped with the replica


def _awareness_for(peer: Peer, relays: list[Relay]) -> list[bytes]:
    """The frames of `relays` that go to `peer`: none of its own, and never a state for its own client id (see
    `Room._send_presence`)."""
    frames = []
    for frame, ids, origin, entries in relays:
        if peer is origin:
            continue
        if peer.awareness_id in ids:
            others = [entry for entry in entries if entry.client_id != peer.awareness_id]
            if others:
                frames.append(encode_awareness(encode_awareness_update(others)))
        else:
            frames.append(frame)
    return frames
