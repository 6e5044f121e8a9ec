"""uvicorn's websocket protocol with a direct link to the application, which ASGI does not offer.

Through ASGI, every frame a room broadcasts is an awaited `websocket.send` per client
(a task woken, Starlette's wrappers, websockets' framing and a copy), and every frame
received goes through a queue to a task that awaits `websocket.receive()`, with reading
paused and resumed around it. The connection also keeps that task's whole coroutine
chain (the middleware stack) alive for as long as it is open. Issue 21 measured these
layers as the larger part of the server's time at 50 clients × 10 edits/s, and of the
memory of an idle connection.

`Link`, offered to the application as an ASGI scope extension, does the same things
directly:
- `write(*payloads)` frames binary messages and hands them to the transport now, in
  one write, and declines (False) when the socket's buffer is over its high-water mark
  or the connection is closing; `send(payload)` is the awaited path for that case;
- `take_over(on_message, on_closed)` delivers every later message by a plain call, as
  soon as it is read, and the end of the connection once; the application then returns
  from its ASGI call and the connection stays open without a task;
- `close(code, reason)` starts the closing handshake.

The application still runs under any ASGI server, or Starlette's TestClient: it finds
no link there and uses ASGI. The protocol is uvicorn's sans-io one (its default with
`websockets` installed): websockets reads the handshake and uvicorn keeps the connection
alive with its pings, but the frames a client sends after the handshake are read by
`ws_frames.FrameReader` and answered here (pongs, the closing handshake, protocol errors),
at a tenth of the event loop's time a frame. No extension is negotiated.
"""

from __future__ import annotations

import struct
from typing import Callable

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from .ws_frames import (
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    close_payload,
    control_frame,
    parse_close,
)

LINK = "redraft.link"  # the scope["extensions"] key
_FIN_BINARY = 0x82
_SMALL = 1 << 14  # below this a frame is one buffer (copying is cheaper than a writev's bookkeeping)

OnMessage = Callable[[bytes | str], None]  # a binary message as bytes, a text message as str
OnClosed = Callable[[], None]


def message_data(event: dict) -> bytes | str:
    """What an ASGI "websocket.receive" event carries: its bytes, or else its text."""
    return event["bytes"] if event.get("bytes") is not None else event.get("text", "")


def frame_header(length: int) -> bytes:
    """The header of one final, unmasked binary frame (a server's frames are never masked)."""
    if length < 126:
        return bytes((_FIN_BINARY, length))
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_BINARY, 126, length)
    return struct.pack("!BBQ", _FIN_BINARY, 127, length)


class Link:
    """One accepted websocket, driven by the application without ASGI's per-message round trips."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: "LinkProtocol"):
        self._protocol = protocol

    def write(self, *payloads: bytes) -> bool:
        """Writes each payload as one binary frame, all in one write to the socket, and returns True; False when
        the caller must use `send` (the buffer is full: it waits there for the client to read) or the connection
        is closing."""
        protocol = self._protocol
        if not protocol.writable.is_set() or not protocol.is_open:
            return False
        # The sans-io protocol keeps no state about data frames it did not send (only fragmentation, which
        # this never starts), so going around it leaves it consistent. Uncompressed frames are valid with
        # permessage-deflate too: compression is per message, flagged in each frame.
        if sum(map(len, payloads)) < _SMALL:  # one buffer: an update, say, and the cursors that point into it
            protocol.transport.write(_framed(payloads))
        else:  # a document's state: no copy, the headers and the payloads go out in one writev
            protocol.transport.writelines([piece for p in payloads for piece in (frame_header(len(p)), p)])
        return True

    async def send(self, payload: bytes) -> None:
        """Writes `payload` once the client has read enough; raises ConnectionError if the connection closed."""
        await self._protocol.writable.wait()
        if not self.write(payload):
            raise ConnectionError("the websocket is closed")

    def pause_reading(self) -> None:
        """Reads no more from the client (TCP holds what it sends) until `resume_reading`."""
        if self._protocol.is_open:
            self._protocol.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._protocol.is_open:
            self._protocol.transport.resume_reading()

    async def close(self, code: int, reason: str) -> None:
        """Sends a close frame (at once, whatever is buffered) and closes when the client answers, or after
        uvicorn's close timeout."""
        self._protocol.close_now(code, reason)

    def take_over(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        """From now on every message goes to `on_message` as it is read, and `on_closed` is called once when
        the connection ends, however it ends. The ASGI application returns after this."""
        self._protocol.take_over(on_message, on_closed)


_last_payloads: tuple[bytes, ...] = ()
_last_framed = b""


def _framed(payloads: tuple[bytes, ...]) -> bytes:
    """The payloads framed back to back in one buffer. A broadcast hands every client the same payload objects
    in a row, so the last ones are kept and framed once for all of them (the tuples compare by identity first)."""
    global _last_payloads, _last_framed
    if payloads != _last_payloads:
        _last_payloads = payloads
        _last_framed = b"".join([frame_header(len(payload)) + payload for payload in payloads])
    return _last_framed


class _NoReader:
    """Stands for the ASGI receive queue of a connection taken over: uvicorn still posts its disconnect there."""

    __slots__ = ()

    def put_nowait(self, event) -> None:
        pass

    def empty(self) -> bool:
        return True


_NO_READER = _NoReader()


class _RequestOnly(Protocol):
    """websockets' frame parser, replaced by one that reads nothing: in `_Handshake` it comes after the request is
    parsed, so every byte after the request stays in `reader.buffer` for the connection's FrameReader."""

    def parse(self):
        while True:
            yield


class _Handshake(ServerProtocol, _RequestOnly):
    """websockets' server side for the handshake alone (its `parse` hands on to `_RequestOnly`'s)."""


class LinkProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-io websocket protocol, offering a `Link` to the application and reading frames itself.

    websockets still reads the handshake's request and writes its response; from the response on, frames are
    read by `ws_frames.FrameReader` (an event-loop tenth of websockets' and uvicorn's cost a frame) and
    answered here: pings, the closing handshake, protocol errors. No extension is ever negotiated, whatever
    the configuration says: the reader knows none.
    """

    _on_message: OnMessage | None = None
    _on_closed: OnClosed | None = None
    _frames: FrameReader | None = None  # from the handshake's response on

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _Handshake(max_size=config.ws_max_size, logger=self.conn.logger)

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The ASGI task was created but has not run yet: the scope it will see still takes the extension.
        if not self.close_sent:
            self.scope["extensions"][LINK] = Link(self)

    def data_received(self, data: bytes) -> None:
        if self._frames is not None:
            self._read(data)
            return
        super().data_received(data)  # the request: websockets keeps what follows it in its buffer
        # A client waits for the handshake's response before it sends a frame (RFC 6455 §4.1). What one that
        # does not sends meanwhile waits in TCP (ASGI's `receive` of the connect event resumes a read or two).
        if self.handshake_initiated and not self.read_paused and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    async def send(self, message) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their headers: some 3.5 KiB) are never read again: an idle
            # connection should not keep them.
            self.request = self.response = None
            if self.handshake_complete and not self.close_sent:
                self._start_reading_frames()

    def _start_reading_frames(self) -> None:
        self._frames = FrameReader(self.config.ws_max_size)
        early = bytes(self.conn.reader.buffer)
        self.conn.reader.buffer.clear()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        if early:
            self._read(early)

    def _read(self, data: bytes) -> None:
        frames = self._frames
        for opcode, payload in frames.feed(data):
            if opcode == OP_BINARY:
                self._on_data(payload)
            elif opcode == OP_TEXT:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    self._fail(CLOSE_INVALID_DATA, "text messages must be UTF-8")
                    return
                self._on_data(text)
            elif opcode == OP_PING:
                # Not while the client leaves what it was sent unread: pings it never reads the answers to
                # would grow the server's write buffer without end.
                if not self.close_sent and self.writable.is_set():
                    self.transport.write(control_frame(OP_PONG, payload))
            elif opcode == OP_PONG:
                self.handle_pong(Frame(Opcode.PONG, payload))  # uvicorn's keepalive
            else:
                self._close_received(payload)
        if frames.error is not None:
            self._fail(frames.error.code, frames.error.reason)

    def _on_data(self, data: bytes | str) -> None:
        if self.close_sent:  # closing: the client's last messages are dropped, as ASGI would
            return
        if self._on_message is not None:
            self._deliver(data)
            return
        # Not taken over yet: ASGI's receive queue, uvicorn's way (reading waits until the application reads).
        key = "text" if isinstance(data, str) else "bytes"
        self.queue.put_nowait({"type": "websocket.receive", key: data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _close_received(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if not self.close_sent:  # the client closes: answer with its code, as RFC 6455 §5.5.1 asks
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.transport.write(control_frame(OP_CLOSE, b"" if code == CLOSE_NO_STATUS else payload[:2]))
            self.close_sent = True
        # Else it answered ours: the closing handshake is done.
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """A protocol error: the close frame says why, and the connection ends without waiting for an answer."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if not self.close_sent and not self.transport.is_closing():
            self.transport.write(control_frame(OP_CLOSE, close_payload(code, reason)))
        self.close_sent = True
        self.transport.close()

    @property
    def is_open(self) -> bool:
        """Neither side has started closing and the transport is still there."""
        return not (self.close_sent or self.disconnected or self.transport.is_closing())

    def take_over(self, on_message: OnMessage, on_closed: OnClosed) -> None:
        if not self.handshake_complete:
            raise RuntimeError("take_over before the websocket was accepted")
        self._on_message, self._on_closed = on_message, on_closed
        if self.disconnected:  # it went away before the application took over
            self._closed()
            return
        # Messages read before this waited in the ASGI queue: they come first, and reading goes on (it was
        # paused after the first of them, waiting for the application to receive).
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event["type"] == "websocket.receive":
                self._deliver(message_data(event))
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # Nobody reads ASGI's queue or scope from now on: an idle connection keeps neither (some 3.5 KiB).
        self.queue = _NO_READER
        self.scope = None

    def _deliver(self, data: bytes | str) -> None:
        try:
            self._on_message(data)
        except Exception:  # the application's error must not reach the transport's callback
            self.logger.exception("handling a websocket message failed")
            self.close_now(1011, "internal error")

    def close_now(self, code: int, reason: str) -> None:
        if not self.is_open:
            return
        self.transport.write(control_frame(OP_CLOSE, close_payload(code, reason)))
        self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._on_message is not None:
            self._closed()

    def _closed(self) -> None:
        on_closed, self._on_closed = self._on_closed, None
        self._on_message = None
        if on_closed is not None:
            on_closed()

    async def run_asgi(self) -> None:
        """uvicorn's own, except that a connection the application took over stays open when it returns."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and self._on_message is None:
            self.transport.close()
