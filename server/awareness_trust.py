"""Who may say what in a room's awareness: one client id per connection, checked states, reserved server ids.

A connection owns the first client id it announces a state for (a stock y-websocket
client has exactly one) unless another live connection holds it, here or on another
instance; it may speak for that id only, and leaving removes only that id. Ids from
`AI_CLIENT_ID_MIN` up belong to the server's own peers (the AI), and no socket may
announce one. Every client state is checked (`vet_client_state`) and the server
stamps `user.role` from the connection's grant.

Refused entries are dropped and counted (`redraft_refusals_total{reason="awareness_..."}`),
never answered with a close: stock y-websocket clients send every state they receive
back to the server, and a removal for each client they time out, so entries for ids
that are not the connection's own are everyday traffic from honest clients, and
closing on them would disconnect everyone. A state that breaks the rules (a colour
carrying CSS, too many bytes, ...) is dropped the same way, for one policy throughout:
that client's presence is not shown, its editing goes on. Bytes that are not JSON at
all are a malformed frame like any other (4400).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

from .awareness import MAX_CLOCK, AwarenessEntry, AwarenessStates, decode_awareness_update, read_entry_count
from .protocol import ProtocolError

# Server peers' ids: the top 2^32 below 2^53 (JavaScript counts exactly up to there). Yjs picks uint32 client ids,
# but yrs (pycrdt) picks 53-bit ones: from 2^32 up would silence every yrs client's presence, while this slice
# catches one yrs client in two million. GET /api/docs/{doc}/session tells the editor.
AI_CLIENT_ID_MIN = 2**53 - 2**32
DEFAULT_MAX_STATE_BYTES = 4096  # name, colours and a cursor take some 300
ROLES = ("editor", "viewer")  # `user.role` as the server stamps it
MAX_NAME_CHARS = 64
MAX_DEPTH = 16  # a y-codemirror cursor nests 4 deep
COLOR = re.compile(r"#[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?")  # all that reaches a `style` attribute
# A stock client's message holds at most the states it was sent (an echo) or knows of: a frame
# with more entries than the room has states, plus this slack, is refused before it is decoded.
EXTRA_ENTRIES = 16
_ECHO = ""  # an entry dropped without counting: it repeats what the server relayed


class StateRefused(Exception):
    """A well-formed awareness state the server does not relay; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def role_of(can_edit: bool) -> str:
    return "editor" if can_edit else "viewer"


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# One decoder for every state: json.loads with an option builds a decoder per call (a third of its time).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_state(state_json: str):
    """The state as JSON.parse would read it (no NaN or Infinity), or ProtocolError."""
    try:
        return _DECODER.decode(state_json)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("awareness state is not JSON") from exc


def _depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
    return depth - 1


def vet_client_state(state_json: str, max_bytes: int, role: str | None = None) -> str:
    """The state as the server relays it: checked, `user.ai` dropped, `user.role` stamped.

    `role` is the connection's; None for a state from another instance, which stamped it already
    (checked again there: an instance trusts another one's word, not its clients').
    """
    return _vet_client_state(state_json, max_bytes, role)[0]


def _vet_client_state(state_json: str, max_bytes: int, role: str | None) -> tuple[str, dict | None]:
    """`vet_client_state`, and the state's `user` as relayed (None for a removal)."""
    if len(state_json.encode()) > max_bytes:
        raise StateRefused("awareness_too_large", f"awareness state over {max_bytes} bytes")
    state = parse_state(state_json)
    if state is None:
        return "null", None
    if not isinstance(state, dict):
        raise StateRefused("awareness_invalid", "awareness state is not a JSON object")
    if _depth(state) > MAX_DEPTH:
        raise StateRefused("awareness_invalid", f"awareness state nests over {MAX_DEPTH} levels")
    user = state.get("user", {})
    if not isinstance(user, dict):
        raise StateRefused("awareness_invalid", "user is not an object")
    name = user.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise StateRefused("awareness_invalid", f"user.name is not a string of at most {MAX_NAME_CHARS} characters")
    for key in ("color", "colorLight"):
        if key in user and not (isinstance(user[key], str) and COLOR.fullmatch(user[key])):
            raise StateRefused("awareness_invalid", f"user.{key} is not #rrggbb or #rrggbbaa")
    if role is None:
        role = user.get("role")
        if role not in ROLES:
            raise StateRefused("awareness_invalid", "user.role is missing")
    user = {key: value for key, value in user.items() if key != "ai"}  # only server peers are the AI
    state["user"] = user = {**user, "role": role}
    relayed = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(relayed.encode())
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise StateRefused("awareness_invalid", "awareness state holds a lone surrogate") from None
    if size > max_bytes:
        raise StateRefused("awareness_too_large", f"awareness state over {max_bytes} bytes")
    return relayed, user


def vet_server_peer_state(state_json: str) -> str:
    """A server peer's state from another instance: a JSON object, or null."""
    state = parse_state(state_json)
    if state is not None and not isinstance(state, dict):
        raise StateRefused("awareness_invalid", "awareness state is not a JSON object")
    return state_json


class RoomAwareness:
    """A room's awareness: the states, who owns which id, and what each source may say.

    The count of present states is bounded by the connections here (one id each), the server's
    own peers, and the states other instances announce (their connections, one id each, forgotten
    30 s after they stop renewing); each client state by `max_state_bytes`.
    """

    def __init__(self, max_state_bytes: int, clock=time.monotonic):
        self.states = AwarenessStates(clock)
        self.max_state_bytes = max_state_bytes
        self.owners: dict[int, object] = {}  # client id -> the live connection here that owns it
        self.server_peer_ids: set[int] = set()
        self.remote_owners: dict[int, str] = {}  # client id -> the instance whose state is shown
        # id -> a connection kept out of it, its state and that state's user
        self.waiting: dict[int, tuple[object, AwarenessEntry, dict | None]] = {}

    # --- a connection here -------------------------------------------------------------

    def from_client(self, conn, role: str, payload: bytes) -> tuple[list[AwarenessEntry], Counter]:
        """What a connection's awareness message changes (to relay) and what was refused, by reason.

        `conn` is the connection: `awareness_id` (None until it claims one), `has_awareness_snapshot`, and
        `set_awareness_user(user)`, called with the `user` of each state it is shown with (vetted, stamped).
        """
        refused: Counter = Counter()
        if read_entry_count(payload) > len(self.states.present) + EXTRA_ENTRIES:
            refused["awareness_too_many"] += 1
            return [], refused
        news = []
        for entry in decode_awareness_update(payload):
            reason = self._judge(conn, entry)
            if reason in (None, "awareness_id_taken"):
                try:
                    state_json, user = _vet_client_state(entry.state_json, self.max_state_bytes, role)
                except StateRefused as exc:
                    reason = exc.reason
                else:
                    vetted = AwarenessEntry(entry.client_id, entry.clock, state_json)
                    if reason is None:
                        news += self._own(conn, vetted, user)
                    else:
                        self.waiting[entry.client_id] = (conn, vetted, user)
            if reason:
                refused[reason] += 1
        return news, refused

    def _own(self, conn, entry: AwarenessEntry, user: dict | None) -> list[AwarenessEntry]:
        self.owners[entry.client_id] = conn
        if user is not None:  # a removal keeps the last user: edits still in flight are the same person's
            conn.set_awareness_user(user)
        self.remote_owners.pop(entry.client_id, None)
        stamped = self.states.accept(entry)
        return [stamped] if stamped is not None else []

    def _judge(self, conn, entry: AwarenessEntry) -> str | None:
        """None when the connection may say this; else the refusal's reason (`_ECHO`: not counted).

        A stock client sends its own state first thing, before it has been told who is here, so until then
        nothing it says is an echo: a client coming back to an id someone took meanwhile (with a higher
        clock) still claims it, and is kept out rather than adopting the other's state as its own.
        """
        if (entry.client_id != conn.awareness_id and self.states.is_echo(entry)
                and (conn.awareness_id is not None or conn.has_awareness_snapshot)):
            return _ECHO
        if entry.client_id >= AI_CLIENT_ID_MIN:
            return "awareness_reserved_id"
        if entry.clock > MAX_CLOCK:
            return "awareness_clock"
        if conn.awareness_id is None and not entry.is_removal:
            conn.awareness_id = entry.client_id  # its one id, for good
        if entry.client_id != conn.awareness_id:
            return "awareness_foreign_id"
        owner = self.owners.get(entry.client_id)
        if owner is not None and owner is not conn:
            return "awareness_id_taken"  # until its owner leaves; the stock client renews every 15 s
        if owner is None and entry.client_id in self.remote_owners and self.states.is_fresh(entry.client_id):
            # Shown for a client on another instance: a client that moved here is taken in once that
            # instance says it left (or after 30 s without news from it, if it crashed).
            return "awareness_id_taken"
        return None

    def leave(self, conn) -> list[AwarenessEntry]:
        """What the connection's leaving changes: the removal of its own id (or that id's next holder)."""
        client_id = conn.awareness_id
        if client_id is None:
            return []
        if self.waiting.get(client_id, (None,))[0] is conn:
            del self.waiting[client_id]
        if self.owners.get(client_id) is not conn:
            return []
        del self.owners[client_id]
        waiting = self.waiting.pop(client_id, None)
        if waiting is not None:
            # The client the id's holder kept out (one that came back while someone held its id) is shown
            # at once, not at its next renewal 15 s on.
            return self._own(*waiting)
        gone = self.states.removal(client_id)
        stamped = self.states.accept(gone) if gone is not None else None
        return [stamped] if stamped is not None else []

    def snapshot_for(self, conn) -> list[AwarenessEntry]:
        """The present states for a joining connection, each one clock on (`AwarenessStates.bump`): never its
        own id, which a stock client would adopt as its local state if the clock were higher (someone holding
        the id while it was away)."""
        present = self.states.snapshot()
        for client_id in [c for c in self.remote_owners if c not in self.states.present]:
            del self.remote_owners[client_id]
        return [self.states.bump(entry.client_id) for entry in present if entry.client_id != conn.awareness_id]

    # --- the server's own peers and other instances ---------------------------------------------

    def from_server_peer(self, entry: AwarenessEntry) -> list[AwarenessEntry]:
        assert entry.client_id >= AI_CLIENT_ID_MIN, "server peers use reserved client ids"
        self.server_peer_ids.add(entry.client_id)
        stamped = self.states.accept(entry)
        return [stamped] if stamped is not None else []

    def from_remote(self, sender: str, payload: bytes) -> tuple[list[AwarenessEntry], Counter]:
        """What another instance's message changes here. Its clients were policed there; shape and size
        are checked again, and ids owned here (a connection, a server peer) are this instance's word."""
        refused: Counter = Counter()
        news = []
        for entry in decode_awareness_update(payload):
            client_id = entry.client_id
            if client_id in self.owners or client_id in self.server_peer_ids:
                refused["remote_awareness_owned_here"] += 1
                continue
            if entry.clock > MAX_CLOCK:
                refused["remote_awareness_clock"] += 1
                continue
            if entry.is_removal:
                # A late goodbye from an instance the client has left is not news.
                if self.remote_owners.get(client_id, sender) == sender:
                    stamped = self.states.accept(entry)
                    if stamped is not None:
                        self.remote_owners.pop(client_id, None)
                        news.append(stamped)
                continue
            try:
                if client_id >= AI_CLIENT_ID_MIN:
                    state_json = vet_server_peer_state(entry.state_json)
                else:
                    state_json = vet_client_state(entry.state_json, self.max_state_bytes)
            except (StateRefused, ProtocolError) as exc:
                refused["remote_" + getattr(exc, "reason", "awareness_invalid")] += 1
                continue
            self.remote_owners[client_id] = sender
            news.append(self.states.accept(AwarenessEntry(client_id, entry.clock, state_json)))
        return news, refused

    def authoritative(self) -> list[AwarenessEntry]:
        """The present states this instance speaks for (its connections', its server peers'), for an
        instance that asks who is here: the others answer for their own."""
        return [entry for entry in self.states.snapshot()
                if entry.client_id in self.owners or entry.client_id in self.server_peer_ids]
