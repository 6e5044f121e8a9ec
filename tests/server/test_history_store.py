"""History in both stores: recorded atomically with the log, attributed at the source, rebuilt exactly.

Seeded random editing through the Room (several pycrdt clients, awareness names, a fake clock spanning 60
days) with log compaction, checkpoints and retention running in between: every version that remains rebuilds
to the text the document had then.
"""

from __future__ import annotations

import json
import random

import anyio
import pytest
from pycrdt import Doc, Text, merge_updates

from server.auth import OPEN_GRANT, Grant
from server.awareness import AwarenessEntry, encode_awareness_update
from server.fanout import NullFanout
from server.history.checkpoints import checkpoint_if_due
from server.history.entry import SERVER_AUTHOR, Author, Change, HistoryEntry, Origin
from server.history.rebuild import state_at, text_at
from server.history.recorder import HistoryPolicy
from server.history.retention import DAY_S, HOUR_S, apply_retention
from server.metrics import Metrics
from server.peer import Peer
from server.protocol import SYNC_UPDATE, SyncMessage, decode_message, encode_awareness, encode_sync
from server.ratelimit import TokenBucket
from server.room import Room
from server.stores.sqlite import SqliteStore

ADA = Author("Ada", "#aa0000")
BOB = Author("Bob", None, verified=True)
T0 = 1_790_000_000.0  # a fixed "now" far from any hour boundary's edge cases


@pytest.fixture
def anyio_backend():
    return "asyncio"


def typed(*chunks: str) -> list[bytes]:
    """One update per chunk, each appended to the text so far."""
    doc = Doc()
    text = doc.get("content", type=Text)
    updates = []
    for chunk in chunks:
        before = doc.get_state()
        text += chunk
        updates.append(doc.get_update(before))
    return updates


def draft(update: bytes, author: Author, at: float, origin: Origin = Origin(), connection: str | None = "i:1"):
    return HistoryEntry.draft(update, Change(author, origin, connection), at)


# --- the store contract -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_append_records_entries_with_their_metadata_and_pages_them(make_store):
    store = await make_store()
    u = typed("a", "b", "c")
    redraft = Origin("redraft", "r1", "shorter", "redraft-small", ADA)
    await store.append("doc", [u[0]], history=[draft(u[0], ADA, T0)])
    # One append, two entries (two changes in one batch), numbered on from the document's last seq.
    two = [draft(u[1], BOB, T0 + 1), draft(u[2], SERVER_AUTHOR, T0 + 2, redraft, None)]
    await store.append("doc", [u[1]], history=two)
    entries = await store.history("doc")
    assert [(e.seq, e.update, e.author, e.at, e.connection) for e in entries] == [
        (1, u[0], ADA, T0, "i:1"), (2, u[1], BOB, T0 + 1, "i:1"), (3, u[2], SERVER_AUTHOR, T0 + 2, None)
    ]
    assert entries[2].origin == redraft  # the requester round-trips as an Author
    assert [e.seq for e in await store.history("doc", after=1)] == [2, 3]
    assert [e.seq for e in await store.history("doc", upto=2)] == [1, 2]
    assert [e.seq for e in await store.history("doc", limit=2, newest_first=True)] == [3, 2]
    assert [e.seq for e in await store.history("doc", after=1, upto=3, limit=1)] == [2]
    assert await store.history_updates("doc", after=1) == [(2, u[1]), (3, u[2])]  # a checkpoint's read
    bare = await store.history("doc", after=1, with_updates=False)  # a version list reads no update bytes
    assert [(e.seq, e.update, e.author, e.origin) for e in bare] == [
        (2, b"", BOB, Origin()), (3, b"", SERVER_AUTHOR, redraft)
    ]
    assert [e.seq for e in await store.history("doc", limit=1, newest_first=True, with_updates=False)] == [3]
    assert await store.history("other") == []  # seqs are per document
    await store.append("other", [u[0]], history=[draft(u[0], ADA, T0)])
    assert [e.seq for e in await store.history("other")] == [1]


@pytest.mark.anyio
async def test_sqlite_records_a_batch_of_entries_in_statements_of_a_bounded_size_and_in_order(tmp_path, monkeypatch):
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "APPEND_ROWS_PER_INSERT", 2)  # a log row and 5 entries: three statements
    store = SqliteStore(tmp_path / "rows.sqlite3")
    await store.start()
    store._conn = calls = CountingConnection(store._conn)
    try:
        u = typed("a", "b", "c", "d", "e", "f")
        await store.append("doc", [u[0]], history=[draft(u[0], ADA, T0)])
        five = [draft(update, BOB if i % 2 else ADA, T0 + i) for i, update in enumerate(u[1:], 1)]
        await store.append("doc", [merge_updates(*u[1:])], history=five)
        entries = await store.history("doc")
        assert [(e.seq, e.update, e.author, e.at) for e in entries] == [
            (i + 1, update, BOB if i % 2 else ADA, T0 + i) for i, update in enumerate(u)
        ]
        assert calls.appends() == ["INSERT INTO appends"] + ["BEGIN"] + ["INSERT INTO appends"] * 3 + ["COMMIT"]
    finally:
        await store.close()


class CountingConnection:
    """The store's writing connection, recording each statement it is asked to run (up to its column list)."""

    def __init__(self, conn):
        self.conn, self.statements = conn, []

    def execute(self, sql, *args):
        self.statements.append(sql.split(" (")[0])
        return self.conn.execute(sql, *args)

    def appends(self) -> list[str]:
        """The statements but the busy timeout's pragma (set when a commit moves between the event loop and
        the writer thread)."""
        return [sql for sql in self.statements if not sql.startswith("PRAGMA busy_timeout")]

    def __getattr__(self, name):
        return getattr(self.conn, name)


@pytest.mark.anyio
async def test_sqlite_stores_a_keystroke_and_its_entry_in_one_statement(tmp_path):
    """The room scenario's append: one call into SQLite (its implicit transaction), not BEGIN, two inserts and
    COMMIT, each of which releases and re-takes the GIL the event loop needs."""
    store = SqliteStore(tmp_path / "one.sqlite3")
    await store.start()
    store._conn = calls = CountingConnection(store._conn)
    try:
        u = typed("a", "b")
        await store.append("doc", [u[0]], history=[draft(u[0], ADA, T0)])
        assert calls.appends() == ["INSERT INTO appends"]
        await store.append("doc", [u[1]], history=[draft(u[1], BOB, T0 + 1)])
        assert [(e.seq, e.author) for e in await store.history("doc")] == [(1, ADA), (2, BOB)]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_compaction_never_touches_history_and_it_survives_a_reopen(make_store):
    store = await make_store()
    u = typed("one ", "two ", "three")
    for i, update in enumerate(u):
        cursor = await store.append("doc", [update], history=[draft(update, ADA, T0 + i)])
    await store.compact("doc", typed("one two three")[0], cursor)
    reopened = await make_store()
    assert [e.update for e in await reopened.history("doc")] == u
    assert await text_at(reopened, "doc", 2) == "one two "


@pytest.mark.anyio
async def test_checkpoints_fold_and_bytes(make_store):
    store = await make_store()
    u = typed(*"abcdef")
    for i, update in enumerate(u):
        await store.append("doc", [update], history=[draft(update, ADA if i % 2 else BOB, T0 + i)])
    await store.put_checkpoint("doc", 2, await state_at(store, "doc", 2))
    await store.put_checkpoint("doc", 4, await state_at(store, "doc", 4))
    assert (await store.checkpoint("doc", 3))[0] == 2
    assert (await store.checkpoint("doc", 6))[0] == 4
    assert await store.checkpoint("doc", 1) is None
    before = await store.history_bytes("doc")
    folded = await store.history("doc", after=1, upto=5)
    update = merge_updates(*(e.update for e in folded))
    merged = HistoryEntry(5, T0 + 4, update, ADA, Origin("merged"), None, (ADA, BOB))
    assert await store.fold_history("doc", folded, merged, [2, 4])
    entries = await store.history("doc")
    assert [(e.seq, e.origin.kind, e.authors) for e in entries] == [
        (1, "typing", ()), (5, "merged", (ADA, BOB)), (6, "typing", ())
    ]
    # A fold computed from what was read before that one (another instance's retention) changes nothing:
    # neither the same run again, nor one that would take the merged entry at its first seq for e5 alone.
    stale = HistoryEntry(6, T0 + 5, merge_updates(folded[-1].update, u[5]), ADA, Origin("merged"), None, (ADA,))
    assert not await store.fold_history("doc", folded, merged, [])
    assert not await store.fold_history("doc", [folded[-1], entries[2]], stale, [])
    assert await store.history("doc") == entries
    assert await store.checkpoint("doc", 6) is None  # both lay inside the folded run
    assert await store.history_bytes("doc") < before
    assert [await text_at(store, "doc", seq) for seq in (1, 5, 6)] == ["a", "abcde", "abcdef"]


@pytest.mark.anyio
async def test_baseline_is_recorded_once_and_only_on_an_empty_history(make_store):
    store, other = await make_store(), await make_store()
    (state,) = typed("before history")
    entry = draft(state, SERVER_AUTHOR, T0, Origin("merged"), None)
    assert await store.add_baseline("doc", entry) is True
    assert await other.add_baseline("doc", entry) is False
    (more,) = typed("!")
    await store.append("doc", [more], history=[draft(more, ADA, T0 + 1)])
    assert [e.seq for e in await other.history("doc")] == [1, 2]


# --- retention and checkpoints ----------------------------------------------------------------


async def _record(store, doc: str, times: list[float]) -> list[str]:
    """One one-character entry per time; returns the text after each."""
    texts, doc_state = [], Doc()
    text = doc_state.get("content", type=Text)
    for i, at in enumerate(times):
        before = doc_state.get_state()
        text += chr(ord("a") + i % 26)
        update = doc_state.get_update(before)
        await store.append(doc, [update], history=[draft(update, ADA if i % 3 else BOB, at)])
        texts.append(str(text))
    return texts


@pytest.mark.anyio
async def test_retention_keeps_recent_entries_whole_then_hours_then_days(make_store):
    store = await make_store()
    now = T0
    # 3 entries in each of two hours 40 days ago, 3 in one hour 10 days ago, 3 within the keep-all week.
    old_day = (now - 40 * DAY_S) // DAY_S * DAY_S + 5 * HOUR_S
    mid_hour = (now - 10 * DAY_S) // HOUR_S * HOUR_S
    times = [old_day + 60, old_day + 120, old_day + HOUR_S + 60,  # one day bucket, two hours
             mid_hour + 60, mid_hour + 120, mid_hour + 180,
             now - 3000, now - 2400, now - 1800]  # one hour (T0 is 800 s into its hour)
    texts = await _record(store, "doc", times)
    await store.put_checkpoint("doc", 2, await state_at(store, "doc", 2))  # inside the first fold
    await store.put_checkpoint("doc", 6, await state_at(store, "doc", 6))  # the last seq of a fold: kept
    assert await apply_retention(store, "doc", now, keep_all_days=7, hourly_days=30) == 2
    entries = await store.history("doc")
    assert [(e.seq, e.origin.kind, e.at) for e in entries] == [
        (3, "merged", times[2]), (6, "merged", times[5]), (7, "typing", times[6]), (8, "typing", times[7]),
        (9, "typing", times[8]),
    ]
    assert entries[0].authors == (BOB, ADA) and entries[0].author == ADA
    assert [await text_at(store, "doc", e.seq) for e in entries] == [texts[e.seq - 1] for e in entries]
    assert (await store.checkpoint("doc", 5)) is None and (await store.checkpoint("doc", 9))[0] == 6
    assert await apply_retention(store, "doc", now, 7, 30) == 0  # nothing left to fold
    # A week on, the week's three entries leave the keep-all window and fold into their hour.
    assert await apply_retention(store, "doc", now + 7 * DAY_S, 7, 30) == 1
    assert [e.seq for e in await store.history("doc")] == [3, 6, 9]
    assert await text_at(store, "doc", 9) == texts[-1]


@pytest.mark.anyio
async def test_retention_zero_keeps_everything(make_store):
    store = await make_store()
    await _record(store, "doc", [T0 - 100 * DAY_S + i for i in range(5)])
    assert await apply_retention(store, "doc", T0, keep_all_days=0, hourly_days=30) == 0
    assert len(await store.history("doc")) == 5


@pytest.mark.anyio
async def test_a_checkpoint_is_made_from_history_when_the_entries_since_outgrow_it(make_store):
    store = await make_store()
    texts = await _record(store, "doc", [T0 + i for i in range(40)])
    not_due = await checkpoint_if_due(store, "doc", min_bytes=10_000)  # 40 small entries: not due
    assert not_due.seq is None and not_due.due_bytes == 10_000 and 0 < not_due.since_bytes <= 10_000
    made = await checkpoint_if_due(store, "doc", min_bytes=100)
    assert (made.seq, made.since_bytes, made.due_bytes) == (40, 0, 100)
    found = await store.checkpoint("doc", 40)
    replica = Doc()
    replica.apply_update(found[1])
    assert found[0] == 40 and str(replica.get("content", type=Text)) == texts[-1]
    assert (await checkpoint_if_due(store, "doc", min_bytes=100)).seq is None  # nothing since
    # The threshold is the checkpoint's own size when that is larger: a big document checkpoints less often.
    await store.append("doc", [b"\x00\x00"], history=[draft(b"\x00\x00", ADA, T0 + 50)])
    check = await checkpoint_if_due(store, "doc", min_bytes=1)
    assert (check.seq, check.since_bytes, check.due_bytes) == (None, 2, len(found[1]))  # 2 since, under its ~63
    assert await text_at(store, "doc", 40) == texts[-1] and await text_at(store, "doc", 12) == texts[11]


# --- recording through the Room -----------------------------------------------------------------


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Client:
    """A pycrdt replica behind a Peer: what the room broadcasts to it is applied before each edit."""

    def __init__(self, room: Room, awareness_id: int, grant=OPEN_GRANT):
        self.room = room
        self.frames: list = []

        async def send(frame):
            self.frames.append(frame)

        async def close(code, reason):
            raise AssertionError(f"the room closed a client: {code} {reason}")

        self.peer = Peer(send, close, grant, "test", 10_000, TokenBucket(1e6, 1e6), Metrics(),
                         max_send_queue_bytes=1 << 24)
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.awareness_id = awareness_id
        self.clock = 0
        room.join(self.peer)

    def say_name(self, name: str, color: str | None = None) -> None:
        self.clock += 1
        user = {"name": name, **({"color": color} if color else {})}
        entry = AwarenessEntry(self.awareness_id, self.clock, json.dumps({"user": user}))
        self.room.handle(self.peer, encode_awareness(encode_awareness_update([entry])))

    def catch_up(self) -> None:
        for frame in self.frames:
            message = decode_message(frame)
            if isinstance(message, SyncMessage) and message.kind == SYNC_UPDATE:
                self.doc.apply_update(message.payload)
        self.frames.clear()

    def edit(self, rng: random.Random) -> None:
        self.catch_up()
        before = self.doc.get_state()
        chars = str(self.text)
        if len(chars) > 8 and rng.random() < 0.35:
            start = rng.randrange(len(chars) - 4)
            del self.text[_utf8(chars, start) : _utf8(chars, start + rng.randint(1, 4))]
        else:
            chunk = rng.choice(["ab", "é ", "😀", "中文", "x"])
            self.text.insert(_utf8(chars, rng.randrange(len(chars) + 1)), chunk)
        self.room.handle(self.peer, encode_sync(SYNC_UPDATE, self.doc.get_update(before)))


def _utf8(chars: str, index: int) -> int:
    return len(chars[:index].encode())  # pycrdt indexes text by UTF-8 byte


def make_room(store, clock: Clock, is_on: bool = True, compact_min_bytes: int = 2048) -> Room:
    policy = HistoryPolicy(is_on, keep_all_days=7, hourly_days=30, instance_id="i1", clock=clock, checkpoint_bytes=1024)
    return Room("doc", store, NullFanout(), Metrics(), 1 << 24, compact_min_bytes, 1 << 20, history=policy)


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [20])
async def test_every_version_rebuilds_to_the_text_it_had_through_compaction_checkpoints_and_retention(make_store, seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    store = await make_store()
    clock = Clock(T0 - 60 * DAY_S)
    room = make_room(store, clock)
    texts: dict[int, str] = {}
    with anyio.fail_after(120):
        await room.load()
        clients = [Client(room, 100 + i) for i in range(3)]
        for i, client in enumerate(clients):
            client.say_name(["Ada", "Bob", "Cy"][i], ["#aa0000", "#00aa00", None][i])
        num_edits = 0
        while num_edits < 2000:
            # Several clients' edits land in one batch (the room flushes when the loop next runs).
            for _ in range(rng.randint(1, 5)):
                rng.choice(clients).edit(rng)
                num_edits += 1
            if rng.random() < 0.02:
                rng.choice(clients).say_name(f"Renamed {num_edits}")
            await room.flush()
            (newest,) = await store.history("doc", limit=1, newest_first=True, with_updates=False)
            texts[newest.seq] = str(room.text)
            clock.now += rng.expovariate(1 / 2600)  # ~60 days over the run: hours, days and the keep-all week
            await anyio.sleep(0)  # lets housekeeping (checkpoints, retention) run between batches
        final = str(room.text)
        await room.close()  # unloading runs retention once more
        entries = await store.history("doc")
        assert {e.origin.kind for e in entries} == {"typing", "merged"}  # retention folded the old part
        assert all(e.seq in texts for e in entries if e.origin.kind == "merged")  # a fold ends at a batch's end
        checked = [e.seq for e in entries if e.seq in texts]
        assert len(checked) > 100
        for seq in checked:
            assert await text_at(store, "doc", seq) == texts[seq], f"seq {seq}, seed {seed}"
        assert await store.checkpoint("doc", entries[-1].seq) is not None
        assert await text_at(store, "doc", entries[-1].seq) == final
        reloaded = make_room(store, clock)
        await reloaded.load()
        assert str(reloaded.text) == final
        await reloaded.close()
        for client in clients:
            await client.peer.stop()


@pytest.mark.anyio
async def test_attribution_comes_from_the_connection_and_a_batch_keeps_one_log_entry(make_store):
    store = await make_store()
    room = make_room(store, Clock(T0), compact_min_bytes=1 << 20)
    rng = random.Random(3)
    with anyio.fail_after(10):
        await room.load()
        ada, bob, anon = Client(room, 1), Client(room, 2, Grant("edit", None, "Bob (from the token)")), Client(room, 3)
        ada.say_name("Ada", "#AA0000cc")
        bob.say_name("Mallory", "#00aa00")  # the token's name wins; the colour is the client's to choose
        for client in (ada, ada, bob, anon, ada):
            client.edit(rng)  # one batch: no await in between
        await room.flush()
        restore = Origin("restore", version=4, requester=ADA)
        room.local_change(lambda: room.text.insert(0, "R"), author=SERVER_AUTHOR, origin=restore)
        await room.flush()
        entries = await store.history("doc")
        assert [(e.author, e.connection) for e in entries] == [
            (Author("Ada", "#aa0000"), f"i1:{ada.peer.id}"),
            (Author("Bob (from the token)", "#00aa00", verified=True), f"i1:{bob.peer.id}"),
            (Author("Anonymous"), f"i1:{anon.peer.id}"),
            (Author("Ada", "#aa0000"), f"i1:{ada.peer.id}"),
            (SERVER_AUTHOR, None),
        ]
        assert entries[-1].origin == Origin("restore", version=4, requester=ADA)
        assert len((await store.load("doc")).updates) == 2  # one log entry per batch, history or not
        assert await text_at(store, "doc", 5) == str(room.text)
        await room.close()
        for client in (ada, bob, anon):
            await client.peer.stop()


@pytest.mark.anyio
async def test_history_off_records_nothing_and_history_on_starts_with_what_was_there(make_store):
    store = await make_store()
    off = make_room(store, Clock(T0), is_on=False)
    with anyio.fail_after(10):
        await off.load()
        writer = Client(off, 1)
        writer.edit(random.Random(1))
        await off.flush()
        before = str(off.text)
        await off.close()
        await writer.peer.stop()
        assert await store.history("doc") == []
        on = make_room(store, Clock(T0))
        await on.load()
        (baseline,) = await store.history("doc")
        assert (baseline.origin.kind, baseline.author) == ("merged", SERVER_AUTHOR)
        assert await text_at(store, "doc", baseline.seq) == before
        await on.close()
        # Off again for a while: what is written then is missing from history until a load with it on.
        off_again = make_room(store, Clock(T0), is_on=False)
        await off_again.load()
        writer = Client(off_again, 2)
        writer.edit(random.Random(2))
        await off_again.flush()
        after_gap = str(off_again.text)
        await off_again.close()
        await writer.peer.stop()
        assert after_gap != before
        assert await text_at(store, "doc", baseline.seq) == before
        again = make_room(store, Clock(T0))
        await again.load()
        await again.recorder._housekeeper
        entries = await store.history("doc")
        assert [(e.seq, e.origin.kind) for e in entries] == [(1, "merged"), (2, "merged")]
        assert await text_at(store, "doc", 2) == after_gap
        await again.close()
        reloaded = make_room(store, Clock(T0))
        await reloaded.load()
        await reloaded.recorder._housekeeper
        assert len(await store.history("doc")) == 2  # nothing missing: nothing recorded
        await reloaded.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"history": "maybe"}, "history must be on or off"),
        ({"history_keep_all_days": -1}, "history_keep_all_days must be 0"),
        ({"history_hourly_days": 3}, "history_hourly_days (3) counts from now"),
    ],
)
def test_history_settings_are_checked(kwargs, message):
    from server.config import ServerConfig

    with pytest.raises(ValueError) as raised:
        ServerConfig(**kwargs)
    assert message in str(raised.value)
    policy = HistoryPolicy.from_config(ServerConfig(history_hourly_days=0), "i9")
    assert (policy.is_on, policy.keep_all_days, policy.hourly_days, policy.instance_id) == (True, 7.0, 0.0, "i9")


@pytest.mark.anyio
async def test_a_large_checkpoint_is_not_looked_for_again_until_that_many_bytes_were_recorded(tmp_path):
    class CountingStore(SqliteStore):
        full_reads = 0

        async def history_updates(self, doc, after=0):
            CountingStore.full_reads += 1
            return await super().history_updates(doc, after)

    store = CountingStore(tmp_path / "store.sqlite3")
    await store.start()
    room = make_room(store, Clock(T0), compact_min_bytes=1 << 20)  # checkpoints from 1 KiB on
    with anyio.fail_after(20):
        await room.load()
        writer = Client(room, 1)
        writer.text.insert(0, "x" * 20_000)  # the first checkpoint holds 20 KB
        writer.room.handle(writer.peer, encode_sync(SYNC_UPDATE, writer.doc.get_update()))
        await room.flush()
        await room.recorder._housekeeper
        assert (await store.checkpoint("doc", 1 << 62))[0] == 1
        reads = CountingStore.full_reads
        rng = random.Random(5)
        for _ in range(300):  # some 10 KB of keystrokes: under the checkpoint's own size
            writer.edit(rng)
            await room.flush()
        await anyio.sleep(0)
        assert CountingStore.full_reads == reads  # not one look at the entries since
        await room.close()
        await writer.peer.stop()
    await store.close()
