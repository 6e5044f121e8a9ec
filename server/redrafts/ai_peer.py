"""The AI peer: the server's own awareness client in a room, listing that room's redrafts.

Every collaborator's editor draws the live canvases from this state, so a preview reaches everyone in the
document, on every server instance (awareness goes through the room's fan-out), without a side channel.
Stock Yjs clients keep it in their awareness map and otherwise ignore it.

The state is bounded: at most MAX_SHOWN redrafts (running ones first, then suggestions, then the recently
finished, newest first within each) and MAX_STATE_BYTES of JSON, under the 64 KiB other instances accept. An
entry holds the passage (up to `redraft_max_chars`), the text so far and the pieces of one canvas (the
earlier canvases as one piece): about 2x the passage plus 16 bytes a canvas position (4 KiB for 256), so one
paragraph's redraft takes some 5-10 KiB. Past the budget the pieces of all but the newest running redraft
go first (their text still shows), then the lowest-ranked entries.

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
from ..awareness_trust import AI_CLIENT_ID_MIN

AI_USER = {"name": "Redraft AI", "color": "#7c3aed", "colorLight": "#7c3aed33", "ai": True}
RENEW_S = 15.0
MAX_SHOWN = 12
MAX_STATE_BYTES = 60 * 1024
_RANK = {"running": 0, "queued": 0, "suggested": 1, "conflict": 1}  # the rest (finished): 2


class AiPeer:
    def __init__(self, room, max_hz: float, clock=time.monotonic):
        self.room = room
        # Reserved (no client may announce it), and apart from other instances' AI peers on the same document.
        self.client_id = AI_CLIENT_ID_MIN + secrets.randbits(32)
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
            state_json = bounded_state(list(self.redrafts.values()))
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


def bounded_state(redrafts: list) -> str:
    """The AI peer's state JSON for these redrafts (in request order), within MAX_SHOWN and MAX_STATE_BYTES."""
    ranked = sorted(reversed(redrafts), key=lambda r: _RANK.get(r.status, 2))[:MAX_SHOWN]
    entries = [r.to_awareness() for r in ranked]

    def encode() -> str:
        return json.dumps({"user": AI_USER, "redrafts": entries}, ensure_ascii=False, separators=(",", ":"))

    state_json = encode()
    if len(state_json.encode()) > MAX_STATE_BYTES:
        for entry in entries[1:]:
            entry["tokens"] = []
        state_json = encode()
    while len(state_json.encode()) > MAX_STATE_BYTES and len(entries) > 1:
        entries.pop()
        state_json = encode()
    if len(state_json.encode()) > MAX_STATE_BYTES:  # one huge passage: its text and pieces only
        entries[0].update(original="", tokens=entries[0]["tokens"][-64:])
        state_json = encode()
    return state_json


class AiPeers:
    """The AI peer of each loaded room that showed a redraft: made on first use, renewed with the room."""

    def __init__(self, max_hz: float):
        self.max_hz = max_hz
        self.peers: dict[str, AiPeer] = {}  # doc -> the AI peer of its loaded room

    def of(self, room) -> AiPeer:
        peer = self.peers.get(room.name)
        if peer is None or peer.room is not room:
            peer = self.peers[room.name] = AiPeer(room, self.max_hz)
        return peer

    def close(self, doc: str) -> None:
        """The document's room was unloaded: its peer leaves with it."""
        peer = self.peers.pop(doc, None)
        if peer is not None:
            peer.close()

    def close_all(self) -> None:
        for peer in self.peers.values():
            peer.close()
