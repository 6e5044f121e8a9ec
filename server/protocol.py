"""The y-websocket wire protocol: strict decoding and encoding of its messages.

pycrdt's own decoder trusts its input (a truncated frame raises IndexError deep
inside it); every read here is bounds-checked so a malformed frame becomes a
`ProtocolError` with a message the client can be told.
"""

from __future__ import annotations

from dataclasses import dataclass

# Outer message types (y-websocket).
MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3

# Sync sub-types (y-protocols/sync).
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

# y-protocols/auth: the only auth message there is.
AUTH_PERMISSION_DENIED = 0

# Websocket close codes, ours and stable. y-websocket (3.x) does not reconnect after
# 4400-4499, mirroring HTTP 4xx: used where a retry would send the same bad thing
# again. 4500-4599 are "try again later": the client reconnects and resyncs.
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHORIZED = 4401  # no token, a bad one, or one that expired mid-session
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_BAD_DOC_NAME = 4404
CLOSE_TOO_LARGE = 4413  # a message, or the document it would grow
CLOSE_INVALID_UPDATE = 4422
CLOSE_UNAVAILABLE = 4503  # the document is full, or its store cannot load it
CLOSE_SLOW_CLIENT = 4508
CLOSE_PENDING_FULL = 4509  # the update waits on changes the server lacks, and the document's budget for those is spent
CLOSE_RATE_LIMITED = 4529  # too many messages, or connections from one address
MAX_CLOSE_REASON = 120  # characters; RFC 6455 caps a close reason at 123 bytes


class ProtocolError(ValueError):
    """A frame that does not follow the y-websocket protocol."""


class Reader:
    """Reads lib0 variable-length integers and byte strings from one frame."""

    def __init__(self, frame: bytes):
        self.frame = frame
        self.pos = 0

    def read_uint(self) -> int:
        # Every update is a dozen of these: locals instead of attributes, and one byte without the loop.
        frame, pos = self.frame, self.pos
        if pos >= len(frame):
            raise ProtocolError("truncated integer")
        byte = frame[pos]
        pos += 1
        value, shift = byte & 0x7F, 7
        while byte >= 0x80:
            if shift > 63:
                raise ProtocolError("integer longer than 64 bits")
            if pos >= len(frame):
                raise ProtocolError("truncated integer")
            byte = frame[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        self.pos = pos
        return value

    def read_bytes(self) -> bytes:
        length = self.read_uint()
        end = self.pos + length
        if end > len(self.frame):
            raise ProtocolError(f"byte string of {length} bytes runs past the frame end")
        chunk = self.frame[self.pos : end]
        self.pos = end
        return chunk

    def read_string(self) -> str:
        try:
            return self.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not valid UTF-8") from exc

    def read_byte(self) -> int:
        if self.pos >= len(self.frame):
            raise ProtocolError("truncated frame")
        byte = self.frame[self.pos]
        self.pos += 1
        return byte

    def read_int(self) -> int:
        """lib0's signed varint: the sign in bit 6 of the first byte, 6 value bits there, 7 in each next one."""
        byte = self.read_byte()
        value, negative, shift = byte & 0x3F, bool(byte & 0x40), 6
        while byte & 0x80:
            byte = self.read_byte()
            value |= (byte & 0x7F) << shift
            shift += 7
            if shift > 69:
                raise ProtocolError("integer longer than 64 bits")
        return -value if negative else value

    @property
    def is_done(self) -> bool:
        return self.pos == len(self.frame)


def write_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_int(value: int) -> bytes:
    first = (0x40 if value < 0 else 0) | (abs(value) & 0x3F)
    rest = abs(value) >> 6
    return bytes([first | 0x80]) + write_uint(rest) if rest else bytes([first])


def write_bytes(chunk: bytes) -> bytes:
    return write_uint(len(chunk)) + chunk


@dataclass(frozen=True)
class SyncMessage:
    kind: int  # SYNC_STEP1 | SYNC_STEP2 | SYNC_UPDATE
    payload: bytes  # a state vector for step 1, an update otherwise


@dataclass(frozen=True)
class AwarenessMessage:
    payload: bytes  # an encoded awareness update


@dataclass(frozen=True)
class QueryAwarenessMessage:
    pass


Message = SyncMessage | AwarenessMessage | QueryAwarenessMessage


def decode_message(frame: bytes) -> Message:
    """Decodes one client frame, or raises ProtocolError saying what is wrong."""
    # A keystroke, read without the general reader: a sync message whose payload's length is one byte (a frame
    # under 131 bytes), as long as the frame says.
    if 2 < len(frame) < 0x83 and frame[0] == MESSAGE_SYNC and frame[1] <= SYNC_UPDATE and frame[2] == len(frame) - 3:
        return SyncMessage(frame[1], frame[3:])
    reader = Reader(frame)
    kind = reader.read_uint()
    if kind == MESSAGE_SYNC:
        sync_kind = reader.read_uint()
        if sync_kind not in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
            raise ProtocolError(f"unknown sync message type {sync_kind}")
        message: Message = SyncMessage(sync_kind, reader.read_bytes())
    elif kind == MESSAGE_AWARENESS:
        message = AwarenessMessage(reader.read_bytes())
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwarenessMessage()
    elif kind == MESSAGE_AUTH:
        raise ProtocolError("auth messages only travel from server to client")
    else:
        raise ProtocolError(f"unknown message type {kind}")
    if not reader.is_done:
        raise ProtocolError(f"{len(frame) - reader.pos} trailing bytes after the message")
    return message


def encode_sync(kind: int, payload: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, kind)) + write_bytes(payload)


def encode_awareness(payload: bytes) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + write_bytes(payload)


def encode_permission_denied(reason: str) -> bytes:
    return bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED)) + write_bytes(reason.encode())
