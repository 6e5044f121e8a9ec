"""The AI peer: the server's own awareness client in a room, listing that room's redrafts.

Every collaborator's editor draws the live canvases from this state, so a preview reaches everyone in the
document, on every server instance (awareness goes through the room's fan-out), without a side channel.
Stock Yjs clients keep it in their awareness map and otherwise ignore it.

Publishing is throttled with a trailing edge: at most `max_hz` states per second, and the newest state is
always the last one sent. The state is renewed every 15 s like a browser's, because clients and servers
forget an awareness state after 30 s without news.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from ..awareness import AwarenessEntry

AI_USER = {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33", "ai": True}
RENEW_S = 15.0


class AiPeer:
    def __init__(self, room, max_hz: float, clock=time.monotonic):
        self.room = room
        self.client_id = secrets.randbits(32)
        self.min_interval_s = 1.0 / max_hz
        self.clock = clock
        self.redrafts: dict[str, object] = {}  # id -> Redraft, in request order
        self._version = 0  # awareness clock
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None  # the pending throttled publish
        self._renewal: asyncio.TimerHandle | None = None
        self._present = False

    def show(self, redraft) -> None:
        self.redrafts[redraft.id] = redraft
        self.changed()

    def hide(self, redraft_id: str) -> None:
        if self.redrafts.pop(redraft_id, None) is not None:
            self.changed()

    def changed(self) -> None:
        """Something shown changed: publish now, or at the end of the throttle interval."""
        if self.room.is_closed:
            return
        wait = self._last_sent + self.min_interval_s - self.clock()
        if wait <= 0 and self._timer is None:
            self._publish()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._publish)

    def _publish(self) -> None:
        self._timer = None
        if self.room.is_closed:
            return
        if not self.redrafts and not self._present:
            return
        self._last_sent = self.clock()
        self._version += 1
        if self.redrafts:
            state = {"user": AI_USER, "redrafts": [r.to_awareness() for r in self.redrafts.values()]}
            state_json = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
            self._present = True
        else:
            state_json = "null"  # y-protocols: a null state with a newer clock removes the client
            self._present = False
        self.room.publish_awareness(AwarenessEntry(self.client_id, self._version, state_json))
        if self._renewal is not None:
            self._renewal.cancel()
        self._renewal = asyncio.get_running_loop().call_later(RENEW_S, self.changed) if self._present else None

    def close(self) -> None:
        for timer in (self._timer, self._renewal):
            if timer is not None:
                timer.cancel()
        self._timer = self._renewal = None
