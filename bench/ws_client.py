"""A minimal websocket client for load generation: binary frames out, frames in at a few µs each.

The `websockets` library spends ~14 µs of Python per received frame; 50
clients at 2000 edits/s receive ~70 000 frames/s, which took a whole core of a
2-core machine away from the server under test. This client parses frames by
hand over an `asyncio.Protocol`, answers pings (the servers ping every 20 s),
hands binary payloads to a callback or drops them, and masks with
`websockets`' C `apply_mask`. No extensions (no permessage-deflate), no
fragmented sends, loopback `ws://` only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from typing import Callable
from urllib.parse import urlsplit

from websockets.utils import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NO_STATUS, CLOSE_ABNORMAL = 1005, 1006
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OnFrame = Callable[[bytes, float], None]  # payload, perf_counter() when its bytes were read


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    return header + mask + apply_mask(payload, mask)


class WsClient(asyncio.Protocol):
    def __init__(self, host: str, path: str, on_frame: OnFrame):
        self.host = host
        self.path = path
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None  # set once the connection is gone
        self._key = base64.b64encode(os.urandom(16))
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._is_close_sent = False
        self.address: tuple[str, int] = ("", 0)

    # --- opening handshake --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        if head[0].split()[1:2] != ["101"] or headers.get("sec-websocket-accept") != accept:
            self.opened.set_exception(ConnectionError(f"websocket handshake refused: {head[0]}"))
            self.transport.close()
            return False
        self.opened.set_result(None)
        return True

    # --- frames --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        if not self.opened.done() and not self._handshake():
            return
        buffer = self._buffer
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            first, length = buffer[pos], buffer[pos + 1] & 0x7F  # server frames are unmasked
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = struct.unpack_from("!H", buffer, start)[0], start + 2
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = struct.unpack_from("!Q", buffer, start)[0], start + 8
            end = start + length
            if end > size:
                break
            self._handle(first & 0x0F, bool(first & 0x80), buffer, start, end, now)
            pos = end
        del buffer[:pos]

    def _handle(self, opcode: int, fin: bool, buffer: bytearray, start: int, end: int, now: float) -> None:
        if opcode in (OP_BINARY, OP_TEXT, OP_CONTINUATION):
            if self.on_frame is None:
                return
            payload = bytes(buffer[start:end])
            if not fin or self._fragments:
                self._fragments.append(payload)
                if not fin:
                    return
                payload, self._fragments = b"".join(self._fragments), []
            self.on_frame(payload, now)
        elif opcode == OP_PING:
            self.transport.write(encode_frame(OP_PONG, bytes(buffer[start:end])))
        elif opcode == OP_CLOSE:
            code = struct.unpack_from("!H", buffer, start)[0] if end - start >= 2 else CLOSE_NO_STATUS
            self.close_code = self.close_code or code
            if not self._is_close_sent:  # the server started the closing handshake: echo its code
                self._is_close_sent = True
                self.transport.write(encode_frame(OP_CLOSE, bytes(buffer[start : start + 2])))
            self.transport.close()

    def send(self, payload: bytes) -> None:
        if self.close_code is None and not self.transport.is_closing():
            self.transport.write(encode_frame(OP_BINARY, payload))

    def send_all(self, payloads: list[bytes]) -> None:
        """Each payload a message of its own, all in one write (a keystroke and the cursor after it)."""
        if self.close_code is None and not self.transport.is_closing():
            self.transport.write(b"".join([encode_frame(OP_BINARY, payload) for payload in payloads]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_code = self.close_code or CLOSE_ABNORMAL
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Sends a normal close and waits for the server to end the connection."""
        if self.transport is None:  # never connected
            return
        if self.close_code is None:
            self._is_close_sent = True
            self.transport.write(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.close_code = 1000
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout_s)
        except asyncio.TimeoutError:
            self.transport.abort()


def new_client(url: str, on_frame: OnFrame | None) -> WsClient:
    """A client for a ws:// URL, not yet connected; `on_frame` None drops every frame."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs are supported, not {url!r}")
    client = WsClient(parts.netloc, parts.path or "/", on_frame)
    client.address = (parts.hostname, parts.port or 80)
    return client


async def connect(client: WsClient, timeout_s: float = 10.0) -> None:
    """Opens the connection and completes the handshake (frames may arrive before this returns)."""
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(lambda: client, *client.address), timeout_s)
    await asyncio.wait_for(client.opened, timeout_s)
