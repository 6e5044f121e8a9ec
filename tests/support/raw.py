"""A raw y-websocket connection for tests that send what no well-behaved client would."""

from __future__ import annotations

from pycrdt import Doc, Text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.protocol import MESSAGE_SYNC, SYNC_STEP1, SYNC_STEP2, encode_sync, write_uint


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
    """The document as the server holds it, read by a fresh client's sync step 1."""
    with open_raw(ws_url, doc, token) as ws:
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
