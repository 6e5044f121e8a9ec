"""The collaboration benchmark's load: N y-websocket clients on one document, and what they measure.

Every client sends edits on a fixed schedule (`collab_step`). An edit appends
the marker "<i.k>" after the client's own previous marker, as a hand-encoded
Yjs v1 update (pycrdt takes ~130 us to make one, too slow for the generator at
8000 edits/s; `self_check` proves the encoding against pycrdt).
Appending after one's own text never splits another client's item, so every
marker reaches the wire whole, also inside the merged updates a server may
broadcast, and a receiver finds them with one regex over the frame.

With cursors on (`--cursors`), every edit is followed by the client's awareness update with its new cursor,
as Redraft's editor (y-codemirror) sends one after each keystroke: the same write carries both.

A few "recorder" clients (spread over the join order) time each marker from
the other clients: fan-out latency = arrival at the recorder − send at the
sender, one process, one monotonic clock. The other clients read and discard,
so nobody is a slow client. Markers that have not arrived `drain_s` after the
step are counted missing. The sending and the figures are `collab_step`'s.
"""

from __future__ import annotations

import asyncio
import random
import re
import time

from collab_step import Load, StepResult
from ws_client import WsClient, connect, new_client

from server.protocol import (
    MESSAGE_AWARENESS,
    MESSAGE_SYNC,
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    write_bytes,
    write_uint,
)

EMPTY_STATE_STEP1 = bytes((MESSAGE_SYNC, SYNC_STEP1, 1, 0))  # state vector of an empty doc
EMPTY_UPDATE_STEP2 = bytes((MESSAGE_SYNC, SYNC_STEP2, 2, 0, 0))  # the empty update b"\0\0"
TEXT_NAME = b"content"  # the root text Redraft's editor uses
MARKER = re.compile(rb"<(\d+)\.(\d+)>")
_CONTENT_STRING, _HAS_ORIGIN = 4, 0x80


def encode_append(client_id: int, clock: int, text: bytes) -> bytes:
    """A Yjs v1 update inserting ASCII `text` after this client's item at clock - 1."""
    head = b"\x01\x01" + write_uint(client_id) + write_uint(clock)
    if clock == 0:  # the first item: no origin, parent is the root text
        struct = bytes((_CONTENT_STRING, 1)) + write_uint(len(TEXT_NAME)) + TEXT_NAME
    else:
        struct = bytes((_HAS_ORIGIN | _CONTENT_STRING,)) + write_uint(client_id) + write_uint(clock - 1)
    return head + struct + write_uint(len(text)) + text + b"\x00"  # no delete set


def encode_update_message(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_UPDATE)) + write_uint(len(update)) + update


# y-codemirror's awareness state: the user and the cursor's anchor and head as Yjs relative positions (item ids).
_CURSOR_STATE = (
    b'{"user":{"name":"Client %d","color":"#30bced","colorLight":"#30bced33"},"cursor":{'
    b'"anchor":{"type":null,"tname":null,"item":{"client":%d,"clock":%d},"assoc":0},'
    b'"head":{"type":null,"tname":null,"item":{"client":%d,"clock":%d},"assoc":0}}}'
)


def encode_cursor_message(index: int, client_id: int, awareness_clock: int, at_clock: int) -> bytes:
    """An awareness message with one entry: the client's state with its cursor on its item at `at_clock`."""
    state = _CURSOR_STATE % (index, client_id, at_clock, client_id, at_clock)
    entry = b"\x01" + write_uint(client_id) + write_uint(awareness_clock) + write_bytes(state)
    return bytes((MESSAGE_AWARENESS,)) + write_bytes(entry)


def self_check() -> None:
    """Raises unless pycrdt reads the hand-made updates as the intended text."""
    from pycrdt import Doc, Text

    doc = Doc()
    text = doc.get(TEXT_NAME.decode(), type=Text)
    clocks = {7: 0, 1 << 31: 0}
    expected = {client: "" for client in clocks}
    for k in range(3):
        for client in clocks:
            marker = f"<{client}.{k}>"
            doc.apply_update(encode_append(client, clocks[client], marker.encode()))
            clocks[client] += len(marker)
            expected[client] += marker
    if sorted(str(text).split(">")) != sorted("".join(expected.values()).split(">")):
        raise RuntimeError(f"hand-encoded updates decode wrongly: {str(text)!r}")


class Window:
    """The measured part of a step: edits sent in [start, end] count."""

    def __init__(self) -> None:
        self.start = self.end = float("inf")
        self.latencies: list[float] = []
        self.sent_by: list[int] = []

    def reset(self, num_clients: int, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.latencies = []
        self.sent_by = [0] * num_clients


class Client:
    """One editor: sends marked edits; a recorder also times the markers it receives."""

    def __init__(self, index: int, is_recorder: bool, session: "Session"):
        self.index = index
        self.is_recorder = is_recorder
        self.session = session
        self.client_id = random.getrandbits(32)
        self.clock = 0
        self.seq = 0
        self.awareness_clock = 0
        self.send_times: list[float] = []
        self.synced = asyncio.Event()
        self.is_closing = False
        self.ws: WsClient | None = None

    @property
    def close_code(self) -> int | None:
        """Why the server ended this connection; None while open or when we closed it."""
        return None if self.is_closing else self.ws.close_code

    def send_edit(self) -> float:
        marker = b"<%d.%d>" % (self.index, self.seq)
        session = self.session
        frame = session.dialect.wrap(session.doc, encode_update_message(encode_append(self.client_id, self.clock, marker)))
        self.clock += len(marker)
        self.seq += 1
        frames = [frame]
        if session.cursors:  # the cursor after the marker's last character, in the same write
            self.awareness_clock += 1
            cursor = encode_cursor_message(self.index, self.client_id, self.awareness_clock, self.clock - 1)
            frames.append(session.dialect.wrap(session.doc, cursor))
        sent = time.perf_counter()
        self.send_times.append(sent)
        self.ws.send_all(frames)
        return sent

    def on_frame(self, frame: bytes, now: float) -> None:
        session = self.session
        session.frames_in += 1
        frame = session.dialect.unwrap(frame)
        if frame is None or len(frame) < 2 or frame[0] != MESSAGE_SYNC:
            if frame and frame[0] == MESSAGE_AWARENESS:
                session.cursors_in += 1
            return
        if frame[1] == SYNC_STEP1:
            self.ws.send(session.dialect.wrap(session.doc, EMPTY_UPDATE_STEP2))
            return
        if frame[1] == SYNC_STEP2:
            self.synced.set()
        if self.is_recorder:
            self._record(frame, now)

    def count_frame(self, frame: bytes, now: float) -> None:
        self.session.frames_in += 1

    def _record(self, frame: bytes, now: float) -> None:
        window = self.session.window
        clients = self.session.clients
        for index, seq in MARKER.findall(frame):
            index, seq = int(index), int(seq)
            if index == self.index or index >= len(clients):
                continue
            send_times = clients[index].send_times
            if seq < len(send_times) and window.start <= send_times[seq] <= window.end:
                window.latencies.append(now - send_times[seq])


class Session:
    """N clients connected to one document, driven through steps of rising rate."""

    def __init__(self, server, doc: str, num_clients: int, num_recorders: int, cursors: bool = False):
        self.doc = doc
        self.cursors = cursors  # every edit followed by the client's cursor
        self.dialect = server.dialect
        self.url = server.ws_url(doc)
        self.num_clients = num_clients
        stride = max(1, num_clients // max(1, num_recorders))
        self.recorders = set(range(0, num_clients, stride)[:num_recorders])
        self.server_pid = server.pid
        self.clients = [Client(i, i in self.recorders, self) for i in range(num_clients)]
        self.window = Window()
        self.frames_in = 0
        self.cursors_in = 0  # awareness messages the recorders received

    async def connect(self, timeout_s: float = 20.0) -> None:
        """Connects every client and waits until each has synced; on failure closes them all and raises."""
        try:
            await self._connect(timeout_s)
        except BaseException:
            await self.close()
            raise

    async def _connect(self, timeout_s: float) -> None:
        async def open_one(client: Client) -> None:
            client.ws = new_client(self.url, client.on_frame)
            await connect(client.ws, timeout_s)
            for frame in self.dialect.hello(self.doc):
                client.ws.send(frame)
            client.ws.send(self.dialect.wrap(self.doc, EMPTY_STATE_STEP1))

        # The first client alone: pycrdt-websocket 0.16.5 fails concurrent first joins of a
        # room ("YRoom already running") and drops those connections.
        for batch in (self.clients[:1], self.clients[1:]):
            await asyncio.gather(*(open_one(c) for c in batch))
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*(c.synced.wait() for c in batch))
            except TimeoutError:
                closed = sorted({c.close_code for c in batch if c.close_code is not None})
                raise RuntimeError(f"clients did not sync within {timeout_s}s (close codes {closed})") from None
        for client in self.clients:
            if not client.is_recorder:  # from here on they only count what they read
                client.ws.on_frame = client.count_frame

    async def close(self) -> None:
        for client in self.clients:
            client.is_closing = True
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None))

    def disconnected(self) -> list[int]:
        return [c.close_code for c in self.clients if c.close_code is not None]

    async def run_step(self, rate: float, warmup_s: float, duration_s: float, drain_s: float) -> StepResult:
        """One step on this session alone: a Load of one."""
        return await Load([self]).run_step(rate, warmup_s, duration_s, drain_s)

    def expected(self) -> int:
        """(marker, recorder) pairs the step's window should deliver: every marker to every other recorder."""
        sent_by = self.window.sent_by
        total = sum(sent_by)
        return sum(total - sent_by[r] for r in self.recorders if self.clients[r].close_code is None)
