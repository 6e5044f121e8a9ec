"""A room's awareness relay against its write path: a cursor that follows a keystroke goes out with it.

The editor sends its cursor right after each keystroke, pointing into the text just typed. While that
keystroke is on its way to the store, the room holds the cursor and writes both to each client at once (one
send instead of two, the text first); a cursor with nothing on its way goes at once, and a store that stalls
or fails does not hold presence up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from pycrdt import Doc, Text

from server.auth import OPEN_GRANT
from server.awareness import AwarenessEntry, decode_awareness_update, encode_awareness_update
from server.fanout import NullFanout
from server.metrics import Metrics
from server.peer import Peer
from server.protocol import MESSAGE_AWARENESS, MESSAGE_SYNC, SYNC_UPDATE, decode_message, encode_awareness, encode_sync
from server.ratelimit import TokenBucket
from server.room import AWARENESS_HOLD_S, Room
from server.stores.sqlite import SqliteStore


@pytest.fixture
def anyio_backend():
    return "asyncio"


class GatedStore(SqliteStore):
    """Appends wait for `gate`; the first `failures` appends fail."""

    def __init__(self, path, failures: int = 0):
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures = failures

    async def append(self, doc, updates, history=()):
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise OSError("disk unplugged")
        return await super().append(doc, updates, history)


class Client:
    """A connection to the room whose writes are recorded as sent: one tuple of frames a write."""

    def __init__(self, room: Room, client_id: int, name: str):
        self.writes: list[tuple[bytes, ...]] = []
        self.doc = Doc(client_id=client_id)
        self.text = self.doc.get("content", type=Text)
        self.name = name
        self.clock = 0

        async def unused(*_):
            raise AssertionError("every write goes through write_now")

        self.peer = Peer(unused, unused, OPEN_GRANT, name, 100, TokenBucket(1e6, 1e6), Metrics(),
                         max_send_queue_bytes=1 << 20, write_now=self._write)  # fmt: skip
        self.room = room
        room.join(self.peer)

    def _write(self, *frames: bytes) -> bool:
        self.writes.append(frames)
        return True

    def type(self, chars: str) -> None:
        before = self.doc.get_state()
        self.text += chars
        self.room.handle(self.peer, encode_sync(SYNC_UPDATE, self.doc.get_update(before)))

    def move_cursor(self) -> None:
        self.clock += 1
        state = {"user": {"name": self.name, "color": "#30bced"}, "cursor": {"at": len(str(self.text))}}
        entry = AwarenessEntry(self.doc.client_id, self.clock, json.dumps(state))
        self.room.handle(self.peer, encode_awareness(encode_awareness_update([entry])))


def what(frames: tuple[bytes, ...]) -> list[str]:
    """Each frame as "text <the text it adds>" or "cursor <whose>"."""
    shown = []
    for frame in frames:
        message = decode_message(frame)
        if frame[0] == MESSAGE_SYNC:
            doc = Doc()
            doc.apply_update(message.payload)
            shown.append("text " + str(doc.get("content", type=Text)))
        elif frame[0] == MESSAGE_AWARENESS:
            (entry,) = decode_awareness_update(message.payload)
            shown.append("cursor " + json.loads(entry.state_json)["user"]["name"])
    return shown


@contextlib.asynccontextmanager
async def three_in_a_room(tmp_path, failures: int = 0):
    """(store, Ann, Bob, Cy): three clients shown in one room, nothing written to them yet."""
    store = GatedStore(tmp_path / "awareness.sqlite3", failures)
    await store.start()
    room = Room("doc", store, NullFanout(), Metrics(), 1 << 20, 1 << 20, 1 << 20)
    await room.load()
    ann, bob, cy = Client(room, 11, "Ann"), Client(room, 12, "Bob"), Client(room, 13, "Cy")
    for client in (ann, bob, cy):
        client.move_cursor()  # claims its id and is shown
    for client in (ann, bob, cy):
        client.writes.clear()
    try:
        yield store, ann, bob, cy
    finally:
        store.gate.set()
        await room.close()
        await store.close()


@pytest.mark.anyio
async def test_a_cursor_after_a_keystroke_reaches_each_other_client_with_it_in_one_write(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        ann.type("a")
        ann.move_cursor()
        assert bob.writes == [] and cy.writes == []  # the cursor waits for the keystroke it points past
        await ann.room.flush()
        for other in (bob, cy):
            assert [what(write) for write in other.writes] == [["text a", "cursor Ann"]]
        assert ann.writes == []  # neither comes back to its sender


@pytest.mark.anyio
async def test_a_cursor_with_no_keystroke_on_its_way_goes_at_once(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        ann.move_cursor()
        assert [what(write) for write in bob.writes] == [["cursor Ann"]] == [what(write) for write in cy.writes]
        assert ann.writes == []
        # Two typists at once: each other client gets both keystrokes and both cursors in one write, and
        # nobody its own.
        ann.type("a")
        ann.move_cursor()
        bob.type("b")
        bob.move_cursor()
        await ann.room.flush()
        assert [sorted(what(write)) for write in cy.writes[1:]] == [["cursor Ann", "cursor Bob", "text ab"]]
        assert [what(write) for write in ann.writes] == [["text ab", "cursor Bob"]]
        assert [what(write) for write in bob.writes[1:]] == [["text ab", "cursor Ann"]]


@pytest.mark.anyio
async def test_a_store_that_stalls_holds_a_cursor_no_longer_than_the_hold(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        store.gate.clear()
        ann.type("a")
        ann.move_cursor()
        await asyncio.sleep(AWARENESS_HOLD_S * 3)
        assert [what(write) for write in bob.writes] == [["cursor Ann"]]  # presence goes on
        store.gate.set()
        await ann.room.flush()
        assert [what(write) for write in bob.writes] == [["cursor Ann"], ["text a"]]


@pytest.mark.anyio
async def test_a_store_that_fails_lets_the_cursor_through_and_the_keystroke_follows_on_the_retry(tmp_path):
    async with three_in_a_room(tmp_path, failures=1) as (store, ann, bob, cy):
        ann.type("a")
        ann.move_cursor()
        await asyncio.sleep(AWARENESS_HOLD_S / 5)  # the append failed at once: the cursor need not wait longer
        assert [what(write) for write in cy.writes] == [["cursor Ann"]]
        await ann.room.flush()
        assert [what(write) for write in cy.writes] == [["cursor Ann"], ["text a"]]


@pytest.mark.anyio
async def test_a_held_relay_never_brings_a_client_a_state_for_its_own_id(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        squatter = Client(ann.room, 11, "Squatter")  # claims Ann's id while Ann holds it: kept out, waiting
        squatter.move_cursor()
        squatter.writes.clear()
        ann.type("a")
        ann.room.leave(ann.peer)  # Ann goes while her keystroke is on its way: the squatter is shown now
        await ann.room.flush()
        assert [what(write) for write in bob.writes] == [["text a", "cursor Squatter"]]
        assert [what(write) for write in squatter.writes] == [["text a"]]  # not its own state back


@pytest.mark.anyio
async def test_a_typist_gets_the_cursor_that_rides_with_its_keystroke_but_not_the_keystroke(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        bob.type("b")
        ann.move_cursor()  # while Bob's keystroke is on its way
        await ann.room.flush()
        assert [what(write) for write in bob.writes] == [["cursor Ann"]]
        assert [what(write) for write in cy.writes] == [["text b", "cursor Ann"]]
        assert [what(write) for write in ann.writes] == [["text b"]]  # and not her own cursor


@pytest.mark.anyio
async def test_a_cursor_whose_keystroke_waits_behind_another_batch_goes_with_its_own_batch(tmp_path):
    async with three_in_a_room(tmp_path) as (store, ann, bob, cy):
        store.gate.clear()
        ann.type("a")
        for _ in range(5):  # the flush takes Ann's keystroke and waits for the store with it
            await asyncio.sleep(0)
        bob.type("b")  # the next batch
        bob.move_cursor()
        store.gate.set()
        await ann.room.flush()
        assert [what(write) for write in cy.writes] == [["text a"], ["text b", "cursor Bob"]]
        assert [what(write) for write in ann.writes] == [["text b", "cursor Bob"]]
