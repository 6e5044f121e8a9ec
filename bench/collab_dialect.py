"""How the load generator speaks to a server: where a document lives and how its messages are framed.

Most servers take the y-websocket protocol as is: the document is in the URL and
every websocket frame is one y-sync or awareness message. Others wrap it (Hocuspocus
prefixes every message with the document's name and wants an auth message first);
a dialect hides that from the clients in `collab_load`.

`unwrap` runs for every frame a client receives (~25,000 frames/s in the ramp), so
it only slices bytes: nothing is decoded past the message type.
"""

from __future__ import annotations

from server.protocol import MESSAGE_AUTH, MESSAGE_AWARENESS, MESSAGE_SYNC, Reader, write_bytes


class YWebsocket:
    """The y-websocket protocol: ws://host:port/<prefix><doc>, one message per frame."""

    name = "y-websocket"
    echoes = False  # whether the server sends a client's own update back to it

    def __init__(self, path_prefix: str = "/ws/", echoes: bool = False):
        self.path_prefix = path_prefix
        self.echoes = echoes

    def url(self, host: str, port: int, doc: str) -> str:
        return f"ws://{host}:{port}{self.path_prefix}{doc}"

    def hello(self, doc: str) -> list[bytes]:
        """Frames a client sends right after the handshake, before its sync step 1."""
        return []

    def wrap(self, doc: str, message: bytes) -> bytes:
        """The frame that carries one y-websocket message for `doc`."""
        return message

    def unwrap(self, frame: bytes) -> bytes | None:
        """The y-websocket message in a frame, or None for a frame of the dialect's own."""
        return frame


# Hocuspocus' message types beyond y-websocket's sync (0) and awareness (1), from
# @hocuspocus/server's types.ts (MessageType) and @hocuspocus/common's auth.ts.
HOCUSPOCUS_SYNC_REPLY = 4  # a sync message that must not be answered with another sync step 1
HOCUSPOCUS_AUTH_TOKEN = 0  # AuthMessageType.Token


class Hocuspocus:
    """The Hocuspocus protocol: every frame is varString(document) + a y-websocket message (its sync and
    awareness types are y-websocket's), on one socket at ws://host:port/ for any number of documents.

    A client first sends an Auth message with its token (the server runs its onAuthenticate hooks, then
    answers Authenticated); frames sent before that answer are queued, not dropped, so the sync step 1
    may follow at once. The server also sends messages of its own: Authenticated, and a SyncStatus ack
    for every update it applied; `unwrap` returns None for those. It broadcasts each update to every
    connection on the document, the sender included (`echoes`).
    """

    name = "hocuspocus"
    echoes = True

    def __init__(self, token: str = "bench"):
        self.token = token
        self._prefixes: dict[str, bytes] = {}

    def url(self, host: str, port: int, doc: str) -> str:
        return f"ws://{host}:{port}/"

    def _prefix(self, doc: str) -> bytes:
        prefix = self._prefixes.get(doc)
        if prefix is None:
            prefix = self._prefixes[doc] = write_bytes(doc.encode())
        return prefix

    def hello(self, doc: str) -> list[bytes]:
        return [self._prefix(doc) + bytes((MESSAGE_AUTH, HOCUSPOCUS_AUTH_TOKEN)) + write_bytes(self.token.encode())]

    def wrap(self, doc: str, message: bytes) -> bytes:
        return self._prefix(doc) + message

    def unwrap(self, frame: bytes) -> bytes | None:
        length = frame[0]
        if length < 0x80:  # a document name under 128 bytes: its length is one byte
            start = 1 + length
        else:
            reader = Reader(frame)
            start = reader.read_uint()
            start += reader.pos
        kind = frame[start]
        if kind == MESSAGE_SYNC or kind == MESSAGE_AWARENESS:
            return frame[start:]
        if kind == HOCUSPOCUS_SYNC_REPLY:  # answered like any sync message: nothing here asks back
            return bytes((MESSAGE_SYNC,)) + frame[start + 1 :]
        return None
