"""Awareness on the wire and in memory: the y-protocols codec and the states a room relays, with its clocks.

The server keeps the newest state per Yjs client id so that late joiners get the
current picture, and it is the authority for the clocks it relays: every state it
accepts goes out with max(the sender's clock, the last clock relayed for that id
+ 1). Observers (y-protocols: a newer clock wins, a `null` state removes the
client) therefore see each id's clocks only go up, whatever a client sent before:
a clock of 10^15 claimed for an id cannot hide that id's later states, and a
client that comes back with the clock it left with is shown at once. Who may say
what is decided in `awareness_trust`; this module only orders and remembers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from .protocol import ProtocolError, Reader, write_bytes, write_uint

# y-protocols clients renew their state every 15 s and drop others' after 30 s without
# news; the server forgets them on the same clock (e.g. those of a crashed instance).
OUTDATED_S = 30.0
# lib0 reads a varuint above Number.MAX_SAFE_INTEGER (2^53 - 1) as an error, which would make
# every observer drop the whole message: clocks stay far below it, with room for the server's +1s.
MAX_CLOCK = 2**52
# Clocks of departed ids are remembered so that an id that comes back is relayed above what
# observers saw last; the oldest are forgotten past this many (~100 bytes each).
MAX_DEPARTED = 4096


@dataclass(frozen=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state_json: str  # "null" means the client left

    @property
    def is_removal(self) -> bool:
        return self.state_json == "null"


def read_entry_count(payload: bytes) -> int:
    """How many entries an awareness update says it holds (read before decoding them all)."""
    return Reader(payload).read_uint()


def decode_awareness_update(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update, as sent; `awareness_trust` judges their states."""
    reader = Reader(payload)
    count = reader.read_uint()
    entries = []
    for _ in range(count):
        client_id = reader.read_uint()
        clock = reader.read_uint()
        entries.append(AwarenessEntry(client_id, clock, reader.read_string()))
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
    """The present states by client id, and the last clock relayed for each id (departed ones too)."""

    def __init__(self, clock=time.monotonic, max_departed: int = MAX_DEPARTED) -> None:
        self.present: dict[int, AwarenessEntry] = {}
        self.updated_at: dict[int, float] = {}
        self.departed: OrderedDict[int, int] = OrderedDict()  # id -> clock of its removal, newest last
        self.max_departed = max_departed
        self.clock = clock

    def last_clock(self, client_id: int) -> int | None:
        known = self.present.get(client_id)
        return known.clock if known is not None else self.departed.get(client_id)

    def is_fresh(self, client_id: int) -> bool:
        """Whether the id is present and renewed within the last OUTDATED_S."""
        at = self.updated_at.get(client_id)
        return at is not None and at >= self.clock() - OUTDATED_S

    def is_echo(self, entry: AwarenessEntry) -> bool:
        """Whether the entry says nothing the server has not relayed already.

        Stock y-websocket clients send every state they receive back to the server (and a removal
        for each client they time out), so such entries are ordinary traffic, not an attack.
        """
        known = self.present.get(entry.client_id)
        if known is not None:
            return entry.clock <= known.clock
        departed = self.departed.get(entry.client_id)
        return entry.is_removal and (departed is None or entry.clock <= departed)

    def accept(self, entry: AwarenessEntry) -> AwarenessEntry | None:
        """Records an entry the server accepted; returns it with the clock to relay it at, or None
        when it changes nothing (the removal of a client that is not present)."""
        last = self.last_clock(entry.client_id)
        clock = entry.clock if last is None else max(entry.clock, last + 1)
        stamped = AwarenessEntry(entry.client_id, clock, entry.state_json)
        if entry.is_removal:
            if entry.client_id not in self.present:
                return None
            self._depart(entry.client_id, clock)
        else:
            self.departed.pop(entry.client_id, None)
            self.present[entry.client_id] = stamped
            self.updated_at[entry.client_id] = self.clock()
        return stamped

    def bump(self, client_id: int) -> AwarenessEntry:
        """A present entry one clock on, remembered so: for a client that joins and may remember the id at
        the current clock (y-websocket keeps the clocks of those it drops on disconnect, and would ignore
        their unchanged states for 15 s after it reconnects). Others have an older clock, which is fine."""
        known = self.present[client_id]
        bumped = self.present[client_id] = AwarenessEntry(client_id, known.clock + 1, known.state_json)
        return bumped

    def removal(self, client_id: int) -> AwarenessEntry | None:
        """The entry that tells everyone this client is gone (None when it is not present)."""
        known = self.present.get(client_id)
        return None if known is None else AwarenessEntry(client_id, known.clock + 1, "null")

    def snapshot(self) -> list[AwarenessEntry]:
        """Every present client's entry, for a late joiner or a query; forgets the outdated."""
        horizon = self.clock() - OUTDATED_S
        for client_id in [c for c, at in self.updated_at.items() if at < horizon]:
            self._depart(client_id, self.present[client_id].clock)
        return list(self.present.values())

    def _depart(self, client_id: int, clock: int) -> None:
        del self.present[client_id], self.updated_at[client_id]
        self.departed[client_id] = clock
        self.departed.move_to_end(client_id)
        while len(self.departed) > self.max_departed:
            self.departed.popitem(last=False)
