"""Awareness states of one room: who is here, their cursors, the AI peer's previews.

The server relays awareness rather than interpreting it. It keeps the newest state
per Yjs client id so that late joiners and query-awareness get the current
picture, and remembers which connection introduced which ids so that a dropped
connection's users disappear for everyone at once (the y-protocols rule: a state
of `null` with a higher clock removes a client).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .protocol import ProtocolError, Reader, write_bytes, write_uint

MAX_STATE_BYTES = 64 * 1024
# y-protocols clients renew their state every 15 s and drop others' after 30 s without
# news; the server forgets them on the same clock (e.g. those of a crashed instance).
OUTDATED_S = 30.0


@dataclass(frozen=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state_json: str  # "null" means the client left

    @property
    def is_removal(self) -> bool:
        return self.state_json == "null"


def decode_awareness_update(payload: bytes) -> list[AwarenessEntry]:
    reader = Reader(payload)
    count = reader.read_uint()
    entries = []
    for _ in range(count):
        client_id = reader.read_uint()
        clock = reader.read_uint()
        state_json = reader.read_string()
        if len(state_json) > MAX_STATE_BYTES:
            raise ProtocolError(f"awareness state over {MAX_STATE_BYTES} bytes")
        try:
            json.loads(state_json)
        except ValueError as exc:
            raise ProtocolError("awareness state is not JSON") from exc
        entries.append(AwarenessEntry(client_id, clock, state_json))
    if not reader.is_done:
        raise ProtocolError("trailing bytes after the awareness update")
    return entries


def encode_awareness_update(entries: list[AwarenessEntry]) -> bytes:
    parts = [write_uint(len(entries))]
    for entry in entries:
        parts.append(write_uint(entry.client_id))
        parts.append(write_uint(entry.clock))
        parts.append(write_bytes(entry.state_json.encode()))
    return b"".join(parts)


class AwarenessStates:
    """The newest awareness entry per client id, as the y-protocols rules order them."""

    def __init__(self, clock=time.monotonic) -> None:
        self.entries: dict[int, AwarenessEntry] = {}
        self.updated_at: dict[int, float] = {}
        self.clock = clock

    def apply(self, entries: list[AwarenessEntry]) -> list[AwarenessEntry]:
        """Keeps the entries that are news and returns them (to relay)."""
        news = []
        for entry in entries:
            known = self.entries.get(entry.client_id)
            # y-protocols: a newer clock wins; an equal clock wins only as a removal.
            if known is None or entry.clock > known.clock or (
                entry.clock == known.clock and entry.is_removal and not known.is_removal
            ):
                if entry.is_removal and known is None:
                    continue
                self.entries[entry.client_id] = entry
                self.updated_at[entry.client_id] = self.clock()
                news.append(entry)
        return news

    def removals(self, client_ids: set[int]) -> list[AwarenessEntry]:
        """The entries that tell everyone these clients are gone."""
        gone = []
        for client_id in client_ids:
            known = self.entries.get(client_id)
            if known is not None and not known.is_removal:
                gone.append(AwarenessEntry(client_id, known.clock + 1, "null"))
        return gone

    def snapshot(self) -> list[AwarenessEntry]:
        """Every present client's entry, for a late joiner or a query; forgets the outdated."""
        horizon = self.clock() - OUTDATED_S
        for client_id in [c for c, at in self.updated_at.items() if at < horizon]:
            del self.entries[client_id], self.updated_at[client_id]
        return [entry for entry in self.entries.values() if not entry.is_removal]
