"""One client connection as a room sees it: a bounded send queue and the client's rights.

Frameworks stay outside: the websocket adapter hands in two coroutines (send a
frame, close with a code). A client that cannot keep up is disconnected once its
queue holds too many frames or too many bytes, rather than slowing the room or
holding the server's memory; Yjs clients resync on reconnect, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections import deque
from typing import Awaitable, Callable

from .auth import Grant
from .history.entry import ANONYMOUS, TYPING, Author, Change
from .metrics import Metrics
from .protocol import CLOSE_SLOW_CLIENT, MAX_CLOSE_REASON
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)
_ids = itertools.count(1)
_EMPTY: deque[bytes] = deque(maxlen=0)  # shared by every peer with nothing queued: never appended to
_RGB = re.compile(r"#[0-9a-fA-F]{6}")  # history keeps "#rrggbb": awareness may add an alpha pair


class Peer:
    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        grant: Grant,
        address: str,
        max_send_queue: int,
        bucket: TokenBucket,
        metrics: Metrics,
        *,
        max_send_queue_bytes: int,
        write_now: Callable[..., bool] | None = None,
    ):
        self.id = next(_ids)
        self._send = send
        # The transport's synchronous path, when it has one (ws_link.Link.write): write_now(*frames) writes them
        # all at once and returns True, or writes nothing and returns False.
        self._write_now = write_now
        self._close = close
        self.grant = grant
        self.address = address
        self.max_send_queue = max_send_queue
        self.max_send_queue_bytes = max_send_queue_bytes
        self.bucket = bucket
        self.metrics = metrics
        self.awareness_id: int | None = None  # the one Yjs client id this connection speaks for (awareness_trust)
        self.has_awareness_snapshot = False  # sent once the client has said who it is (Room._send_presence)
        self.sent_bytes = 0
        self.close_code: int | None = None
        self._queue: deque[bytes] = _EMPTY  # a deque of its own once a frame has to wait (most never do)
        self.queued_bytes = 0  # in the queue; the frame being written is out of it
        self._sender: asyncio.Task | None = None  # drains the queue while it has frames, then ends
        self._awareness_user: tuple[str, str | None] = ("", None)  # name, colour from its own awareness state
        self._change: Change | None = None  # what its updates are recorded as; rebuilt when the name changes

    # --- identity, for history -------------------------------------------------------------

    def set_awareness_user(self, user: dict) -> None:
        """The `user` of its own awareness state (vetted by awareness_trust): the name and colour it calls
        itself by."""
        name = user.get("name") if isinstance(user.get("name"), str) else ""
        color = user.get("color") if isinstance(user.get("color"), str) else None
        color = color[:7].lower() if color and _RGB.match(color) else None
        if (name.strip(), color) != self._awareness_user:
            self._awareness_user = (name.strip(), color)
            self._change = None

    def change(self, instance_id: str) -> Change:
        """Who its updates are recorded as: the token's name when the token carries one (verified), else the
        name its awareness state gives (unverified), else Anonymous. Never a kind other than "person"."""
        if self._change is None:
            name, color = self._awareness_user
            if self.grant.name:  # a signed token's `name` claim
                author = Author(self.grant.name, color, verified=True)
            else:
                author = Author(name or ANONYMOUS, color, verified=False)
            self._change = Change(author, TYPING, f"{instance_id}:{self.id}")
        return self._change

    @property
    def is_open(self) -> bool:
        return self.close_code is None

    def send(self, frame: bytes) -> None:
        """Sends a frame without waiting: written at once when the transport can take it and nothing is
        queued ahead of it, else queued; disconnects a client that fell too far behind."""
        if not self.is_open:
            return
        # An idle connection has no sender task; a busy one keeps its order (a frame in flight counts too).
        if self._sender is None and self._write_now is not None and self._write_now(frame):
            self.sent_bytes += len(frame)
            return
        if len(self._queue) >= self.max_send_queue:
            self.metrics.refused("slow_client")
            self.close(CLOSE_SLOW_CLIENT, f"client fell {self.max_send_queue} messages behind")
            return
        # Frames count by bytes too: 2,000 frames of 1 MB would be 2 GB for one client that never reads
        # (issue 14). The check is on what already waits, so one frame may take the queue past the budget:
        # a large document's sync step 2 is one frame, and a joiner in a busy room has a few small ones
        # queued when it asks. A client holds at most the budget plus one frame.
        if self.queued_bytes >= self.max_send_queue_bytes:
            self.metrics.refused("slow_client")
            self.close(CLOSE_SLOW_CLIENT, f"client fell {self.queued_bytes + len(frame)} bytes behind")
            return
        if self._queue is _EMPTY:
            self._queue = deque()
        self._queue.append(frame)
        self.queued_bytes += len(frame)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain(), name=f"peer-{self.id}-sender")

    def send_all(self, frames: list[bytes]) -> None:
        """`send` for several frames in a row: in one write to the socket when they can go at once."""
        if not frames or not self.is_open:
            return
        if self._sender is None and self._write_now is not None and self._write_now(*frames):
            self.sent_bytes += sum(map(len, frames))
            return
        for frame in frames:
            self.send(frame)

    async def _drain(self) -> None:
        """Sends what is queued through the awaited path (which waits while the client does not read)."""
        try:
            while self._queue:
                frame = self._queue.popleft()
                self.queued_bytes -= len(frame)
                await self._send(frame)
                self.sent_bytes += len(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away under us: the receive loop notices too
            log.debug("peer %s send failed: %s", self.id, exc)
            self.close_code = self.close_code or 1006
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    def close(self, code: int, reason: str) -> None:
        """Closes the connection with a code and a reason the client can read."""
        if not self.is_open:
            return
        self.close_code = code
        self._queue.clear()  # the frames' memory goes now, not when the socket finally closes
        self.queued_bytes = 0
        log.info("closing peer %s (%s): %d %s", self.id, self.address, code, reason)
        asyncio.get_running_loop().create_task(self._close_now(code, reason))

    async def _close_now(self, code: int, reason: str) -> None:
        if self._sender is not None:
            self._sender.cancel()
        try:
            await self._close(code, reason[:MAX_CLOSE_REASON])
        except Exception as exc:
            log.debug("peer %s close failed: %s", self.id, exc)

    async def stop(self) -> None:
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
