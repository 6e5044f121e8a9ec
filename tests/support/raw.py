"""A raw y-websocket connection for tests that send what no well-behaved client would."""

from __future__ import annotations

import os
import socket
import struct

from pycrdt import Doc, Text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.protocol import MESSAGE_SYNC, SYNC_STEP1, SYNC_STEP2, encode_sync, write_uint


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """A client's websocket frame as RFC 6455 §5.2 lays it out (minimal length, a random mask), written by hand so
    it can break the rules no library lets a test break: unmasked, reserved bits, a lone fragment."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if len(payload) < 126:
        header = bytes((first, mask_bit | len(payload)))
    elif len(payload) < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, len(payload))
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, len(payload))
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_raw(ws_url: str, doc: str, token: str | None = None, **kwargs):
    url = f"{ws_url}/{doc}" + (f"?token={token}" if token else "")
    return connect(url, open_timeout=5, close_timeout=5, **kwargs)


def send_until_closed(ws, frames) -> int:
    """Sends frames until the server closes the connection; returns how many went out.

    A flood that the server cuts off (a rate limit, a size limit) races the close: the
    server's close frame can arrive while the loop is still sending, and the next send
    then raises. The close is what the test reads next, with `close_of`.
    """
    sent = 0
    try:
        for frame in frames:
            ws.send(frame)
            sent += 1
    except ConnectionClosed:
        pass
    return sent


def close_of(ws, timeout: float = 5.0) -> tuple[int, str]:
    """Reads until the server closes; returns its close code and reason."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code, exc.rcvd.reason
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection within {timeout}s") from None


def server_text(ws_url: str, doc: str, token: str | None = None) -> str:
    """The document as the server holds it, read by a fresh client's sync step 1. Frames of any size are
    taken: a joiner may first be sent the broadcast of an update whose append was still in flight (a 900 KB
    insert in test_limits, deleted again by the time the sync step 2 is written), which is skipped here."""
    with open_raw(ws_url, doc, token, max_size=None) as ws:
        ws.send(encode_sync(SYNC_STEP1, write_uint(0)))
        while True:
            frame = ws.recv(timeout=5)
            if frame[0] == MESSAGE_SYNC and frame[1] == SYNC_STEP2:
                replica = Doc()
                text = replica.get("content", type=Text)
                # Skip the length prefix of the payload (a varuint).
                pos = 2
                while frame[pos] & 0x80:
                    pos += 1
                replica.apply_update(bytes(frame[pos + 1 :]))
                return str(text)


def open_unread(port: int, doc: str, host: str | None = None) -> socket.socket:
    """A websocket handshake on a plain socket, written as is (any Host, any path) and then not read: also
    a client that never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /ws/{doc} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def last_close_code(sock: socket.socket) -> int | None:
    """Reads what the server sent, frame by frame, up to its close frame; returns that frame's code."""
    sock.settimeout(10)
    received = bytearray()

    def take(num: int) -> bytes:
        while len(received) < num:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the server hung up without a close frame")
            received.extend(chunk)
        taken = bytes(received[:num])
        del received[:num]
        return taken

    while b"\r\n\r\n" not in received:
        received.extend(sock.recv(4096))
    del received[: received.index(b"\r\n\r\n") + 4]  # the handshake's answer
    while True:
        opcode, length = take(2)
        length &= 0x7F
        if length >= 126:
            length = int.from_bytes(take(2 if length == 126 else 8), "big")
        payload = take(length)
        if opcode & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")
