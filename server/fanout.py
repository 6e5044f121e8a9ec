"""Fan-out between server replicas serving the same documents.

Hygiene as in hocuspocus' Redis extension: every message carries the sending
instance's id and an instance drops its own; what arrives from elsewhere is
applied to the room under a distinct origin and relayed only to local clients,
so nothing echoes back and forth between instances.

Document updates travel through the store's own Redis streams (exactly once, in
order, resumable after a restart or a dropped connection); awareness is
ephemeral and travels over pub/sub.

This module holds the protocols a room talks to and the one-process `NullFanout`; the Redis one is
server/redis_fanout.py, imported only when a Redis URL is configured, so that a room never loads redis.
"""

from __future__ import annotations

from typing import Protocol


class Listener(Protocol):
    def on_remote_update(self, update: bytes) -> None: ...

    def on_remote_awareness(self, payload: bytes, sender: str) -> None:
        """Awareness another instance (`sender`, its id) relayed."""
        ...

    def on_awareness_query(self) -> None:
        """Another instance just loaded the document and asks who is present."""
        ...


class Fanout(Protocol):
    async def start(self) -> None: ...

    async def subscribe(self, doc: str, cursor: str, listener: Listener) -> None: ...

    async def unsubscribe(self, doc: str) -> None: ...

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        """Sends an awareness update to the other instances without waiting: presence is best effort, and a
        room relays one for nearly every keystroke (the editor sends its cursor after each)."""
        ...

    async def query_awareness(self, doc: str) -> None: ...

    def covered(self, doc: str, appended: str) -> str:
        """The log position up to which this replica holds every entry, given its own last append."""
        ...

    async def close(self) -> None: ...


class NullFanout:
    """One server process: nobody else to tell."""

    async def start(self) -> None:
        pass

    async def subscribe(self, doc: str, cursor: str, listener: Listener) -> None:
        pass

    async def unsubscribe(self, doc: str) -> None:
        pass

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        pass

    async def query_awareness(self, doc: str) -> None:
        pass

    def covered(self, doc: str, appended: str) -> str:
        return appended  # the only writer: it holds everything it appended

    async def close(self) -> None:
        pass
