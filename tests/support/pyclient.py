"""A small y-websocket client on pycrdt, for tests that need a Python peer beside the Node ones.

It speaks the protocol from scratch (sync step 1/2, update, awareness) rather than
through the server's own codecs, so it checks the server against an independent
reading of the wire format. The client runs on an event loop in a thread of its
own and every public method blocks with a deadline, so a test can drive it
between calls to the (blocking) Node peers without anyone starving.

Indices in this API count code points (Python `str` indices); pycrdt counts
UTF-8 bytes, and the conversion happens here, on the client's own thread, against
the text as it is at that instant (so a concurrent remote insert cannot make an
index land inside a character).
"""

from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import urlencode

import anyio
from pycrdt import Doc, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TEXT_NAME = "content"
MESSAGE_SYNC, MESSAGE_AWARENESS = 0, 1
SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE = 0, 1, 2


def write_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_bytes(chunk: bytes) -> bytes:
    return write_uint(len(chunk)) + chunk


class Decoder:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def bytes(self) -> bytes:
        length = self.uint()
        self.pos += length
        return self.data[self.pos - length : self.pos]


def utf8_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


class PyClient:
    """One pycrdt `Doc` kept in sync with the server over one websocket at a time."""

    def __init__(self, ws_url: str, doc: str, params: dict | None = None, name: str | None = None):
        self.url = f"{ws_url}/{doc}" + (f"?{urlencode(params)}" if params else "")
        self.close_codes: list[int | None] = []  # one per connection that ended
        self.awareness_states: dict[int, dict] = {}  # other clients' states, by client id
        self.errors: list[Exception] = []  # frames that could not be handled
        self._awareness_clocks: dict[int, int] = {}
        self._local_state: dict | None = {"user": {"name": name}} if name else None
        self._local_clock = 0
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._is_synced = False
        self._is_applying_remote = False
        self._outgoing: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"pyclient-{doc}", daemon=True)
        self._thread.start()
        self._run(self._create_doc())
        self.client_id = self.doc.client_id  # the awareness id, as in Yjs
        try:
            self.connect()
        except BaseException:
            self.close()
            raise

    # --- plumbing: every coroutine runs on the client's own loop ---------------------------

    def _run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout + 1)

    async def _create_doc(self) -> None:
        self.doc = Doc()
        self._text = self.doc.get(TEXT_NAME, type=Text)
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event) -> None:
        if not self._is_applying_remote:
            self._outgoing.append(event.update)

    async def _send_local_updates(self) -> None:
        # Offline, these are dropped: the sync on reconnect carries the edits.
        updates, self._outgoing = self._outgoing, []
        for update in updates:
            await self._send(bytes((MESSAGE_SYNC, SYNC_UPDATE)) + write_bytes(update))

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None:
            return  # going offline: the next connect resyncs
        try:
            await ws.send(frame)
        except ConnectionClosed:
            pass  # the reader records the close; the next connect resyncs

    # --- connection ------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> None:
        self._run(self._connect(timeout), timeout)

    async def _connect(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            self._ws = await connect(self.url, proxy=None, compression=None)
        self._is_synced = False
        self._reader = asyncio.create_task(self._read(self._ws))
        await self._send(bytes((MESSAGE_SYNC, SYNC_STEP1)) + write_bytes(self.doc.get_state()))
        if self._local_state is not None:
            # The server marked our last state removed at clock + 1 when we left: come back above it.
            self._local_clock += 2
            await self._send_awareness()

    async def _read(self, ws) -> None:
        try:
            async for frame in ws:
                await self._handle(frame)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a frame we could not apply: the test must hear of it
            self.errors.append(exc)
            await ws.close()
        finally:
            self.close_codes.append(ws.close_code)
            if self._ws is ws:
                self._ws = None
                # As y-websocket does: others' presence is unknown while offline.
                self.awareness_states.clear()

    async def _handle(self, frame: bytes) -> None:
        decoder = Decoder(frame)
        kind = decoder.uint()
        if kind == MESSAGE_SYNC:
            sync_kind = decoder.uint()
            payload = decoder.bytes()
            if sync_kind == SYNC_STEP1:
                reply = bytes((MESSAGE_SYNC, SYNC_STEP2)) + write_bytes(self.doc.get_update(payload))
                await self._send(reply)
                return
            self._is_applying_remote = True
            try:
                self.doc.apply_update(payload)
            finally:
                self._is_applying_remote = False
            if sync_kind == SYNC_STEP2:
                self._is_synced = True
        elif kind == MESSAGE_AWARENESS:
            self._apply_awareness(decoder.bytes())

    def _apply_awareness(self, payload: bytes) -> None:
        decoder = Decoder(payload)
        for _ in range(decoder.uint()):
            client_id, clock = decoder.uint(), decoder.uint()
            state = json.loads(decoder.bytes().decode())
            if client_id == self.client_id or clock < self._awareness_clocks.get(client_id, -1):
                continue
            self._awareness_clocks[client_id] = clock
            if state is None:
                self.awareness_states.pop(client_id, None)
            else:
                self.awareness_states[client_id] = state

    async def _send_awareness(self) -> None:
        state = json.dumps(self._local_state).encode()
        payload = write_uint(1) + write_uint(self.client_id) + write_uint(self._local_clock) + write_bytes(state)
        await self._send(bytes((MESSAGE_AWARENESS,)) + write_bytes(payload))

    def disconnect(self) -> None:
        self._run(self._disconnect())

    async def _disconnect(self) -> None:
        ws, reader = self._ws, self._reader
        if ws is not None:
            self._ws = None
            await ws.close()
            await reader

    def wait_synced(self, timeout: float = 10.0) -> None:
        self._run(self._wait_for(lambda: self._is_synced, timeout, "sync"), timeout)

    # --- editing and reading -------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._run(self._read_text())

    async def _read_text(self) -> str:
        return str(self._text)

    def insert(self, index: int, chunk: str) -> str:
        """Inserts at a code point index; returns the text after the edit."""
        return self._run(self._edit(lambda text: self._text.insert(utf8_offset(text, index), chunk)))

    def delete(self, index: int, length: int) -> str:
        """Deletes `length` code points from `index`; returns the text after the edit."""

        def remove(text: str) -> None:
            start = utf8_offset(text, index)
            del self._text[start : start + len(text[index : index + length].encode())]

        return self._run(self._edit(remove))

    def apply_ops(self, ops: list[dict]) -> str:
        """Applies fuzz ops (see `tests.support.fuzz`), each as its own transaction."""

        def apply(text: str) -> None:
            for op in ops:
                text = str(self._text)
                chars = len(text)
                if op["op"] == "append":
                    self._text.insert(len(text.encode()), op["text"])
                elif op["op"] == "insert":
                    index = int(op["at"] * (chars + 1))
                    self._text.insert(utf8_offset(text, index), op["text"])
                elif chars:
                    index = int(op["at"] * chars)
                    count = min(op["count"], chars - index)
                    start = utf8_offset(text, index)
                    del self._text[start : start + len(text[index : index + count].encode())]

        return self._run(self._edit(apply))

    async def _edit(self, change) -> str:
        change(str(self._text))
        await self._send_local_updates()
        return str(self._text)

    def wait_text(self, expected: str, timeout: float = 10.0) -> None:
        try:
            self._run(self._wait_for(lambda: str(self._text) == expected, timeout, "text"), timeout)
        except TimeoutError:
            raise AssertionError(f"text never became {expected!r}; it is {self.text!r}") from None

    # --- awareness -------------------------------------------------------------------------

    def set_awareness(self, state: dict | None) -> None:
        self._run(self._set_awareness(state))

    async def _set_awareness(self, state: dict | None) -> None:
        self._local_state = state
        self._local_clock += 1
        if self._ws is not None:
            await self._send_awareness()

    def peers_awareness(self) -> dict[int, dict]:
        return self._run(self._copy_awareness())

    async def _copy_awareness(self) -> dict[int, dict]:
        return dict(self.awareness_states)

    def wait_awareness(self, predicate, timeout: float = 10.0) -> dict[int, dict]:
        """Waits until predicate(states of the others) holds; returns those states."""
        self._run(self._wait_for(lambda: predicate(self.awareness_states), timeout, "awareness"), timeout)
        return self.peers_awareness()

    async def _wait_for(self, predicate, timeout: float, what: str) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await asyncio.sleep(0.005)

    # --- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._disconnect())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
