"""A client's websocket frames (RFC 6455 §5), parsed from the byte stream in one pass.

websockets' sans-io parser is a chain of generators that reads a frame header a field at a time, and
uvicorn wraps each frame in an event and a dispatch; together 11-13 µs of the event loop a keystroke's
frame (`python -m bench.ws_frames`), the largest single part of the GIL at the ramp's top (issue 21).
`FrameReader` reads the frames of an accepted connection with no extension negotiated (the server
declines permessage-deflate) in about a tenth of that: a header is read in place, a payload unmasked
by websockets' C helper, and a message handed on whole.

It is sans-io like websockets': bytes in, messages out. The caller answers pings and closes.
"""

from __future__ import annotations

import struct

try:  # websockets' C extension; its pure Python fallback where it was not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_CONTROL = frozenset((OP_CLOSE, OP_PING, OP_PONG))
MAX_CONTROL_PAYLOAD = 125

CLOSE_NORMAL = 1000
CLOSE_NO_STATUS = 1005  # a close frame with no code: never sent, only reported
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2

Message = tuple[int, bytes]  # (opcode, payload): a whole data message (text or binary) or one control frame
_NOTHING: list[Message] = []  # returned while a frame is incomplete: never appended to


class FrameError(Exception):
    """The client broke the protocol: the connection is closed with `code`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader:
    """Messages from a client's frames: masked (a client's always are), no reserved bits, data messages
    possibly fragmented with control frames between the fragments, none over `max_size` bytes.

    `feed(data)` returns the messages the bytes completed, in order. After a protocol error it returns those
    before it and keeps the error in `error`; after that, and after a close frame, it returns nothing.
    """

    __slots__ = (
        "max_size", "error", "_buffer", "_needed", "_fragments", "_fragments_size", "_fragments_opcode", "_done"
    )

    def __init__(self, max_size: int):
        self.max_size = max_size
        self.error: FrameError | None = None
        self._buffer = bytearray()  # the start of a frame still incomplete
        self._needed = 0  # the buffer is worth parsing again once it holds this many bytes
        self._fragments: list[bytes] | None = None  # of a fragmented message still open
        self._fragments_size = 0
        self._fragments_opcode = OP_BINARY
        self._done = False  # a close frame or an error was read: nothing after it counts

    def feed(self, data: bytes) -> list[Message]:
        if self._done:
            return _NOTHING
        if self._buffer:
            # A frame that arrives in pieces (a large document's update) is gathered here and parsed once,
            # so its bytes are copied once each, not once a piece.
            self._buffer += data
            if len(self._buffer) < self._needed:
                return _NOTHING
            data = bytes(self._buffer)
            self._buffer.clear()
        messages: list[Message] = []
        try:
            self._parse(data, messages)
        except FrameError as exc:  # what came before it still counts
            self.error, self._done = exc, True
            self._buffer.clear()
        return messages

    def _parse(self, data: bytes, messages: list[Message]) -> None:
        """Appends to `messages` what `data` completes and keeps an incomplete frame's start for later."""
        pos, end = 0, len(data)
        while True:
            available = end - pos
            if available < 2:
                needed = 2
                break
            first, second = data[pos], data[pos + 1]
            length = second & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126:
                if available < 4:
                    needed = 4
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                if available < 10:
                    needed = 10
                    break
                (length,) = struct.unpack_from("!Q", data, pos + 2)
                start = pos + 14
            if not second & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            if first & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension was negotiated")
            opcode = first & 0x0F
            if opcode & 0x08 and (not first & 0x80 or length > MAX_CONTROL_PAYLOAD):
                raise FrameError(CLOSE_PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes")
            # Refused from the header, before its payload is waited for (a continuation counts what came before).
            if length + (self._fragments_size if opcode == OP_CONTINUATION else 0) > self.max_size:
                raise FrameError(CLOSE_MESSAGE_TOO_BIG, f"message exceeds {self.max_size} bytes")
            stop = start + length
            if stop > end:
                needed = stop - pos
                break
            payload = apply_mask(data[start:stop], data[start - 4 : start])
            pos = stop
            if opcode == OP_BINARY or opcode == OP_TEXT:
                if self._fragments is not None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "a message began before the last one ended")
                if first & 0x80:
                    messages.append((opcode, payload))
                else:
                    self._fragments, self._fragments_size, self._fragments_opcode = [payload], length, opcode
            elif opcode == OP_CONTINUATION:
                if self._fragments is None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "a continuation frame with no message to continue")
                self._fragments_size += length
                self._fragments.append(payload)
                if first & 0x80:
                    messages.append((self._fragments_opcode, b"".join(self._fragments)))
                    self._fragments, self._fragments_size = None, 0
            elif opcode in _CONTROL:
                messages.append((opcode, payload))
                if opcode == OP_CLOSE:
                    self._done = True
                    return
            else:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if pos < end:
            self._buffer += memoryview(data)[pos:]
            self._needed = needed


def parse_close(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (RFC 6455 §5.5.1, §7.4); CLOSE_NO_STATUS for an empty one."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "a close frame's code is two bytes")
    (code,) = struct.unpack_from("!H", payload)
    if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "a close frame's reason must be UTF-8") from None
    return code, reason


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked control frame from the server (a pong, a close): at most 125 bytes of payload."""
    return bytes((0x80 | opcode, len(payload))) + payload


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, and the reason cut to what a control frame holds (on a character)."""
    encoded = reason.encode()[:MAX_CLOSE_REASON_BYTES]
    return struct.pack("!H", code) + encoded.decode(errors="ignore").encode()
