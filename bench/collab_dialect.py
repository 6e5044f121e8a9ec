"""How the load generator speaks to a server: where a document lives and how its messages are framed.

Most servers take the y-websocket protocol as is: the document is in the URL and
every websocket frame is one y-sync or awareness message. Others wrap it (Hocuspocus
prefixes every message with the document's name and wants an auth message first);
a dialect hides that from the clients in `collab_load`.
"""

from __future__ import annotations


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
