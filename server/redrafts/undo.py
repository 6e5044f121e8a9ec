"""Undo and redo of a document's redrafts on its loaded room: whether each can be taken back now, why not
(naming who changed its words), and the edit that takes it back (the text side is revert.py).

Each redraft keeps the change its next undo or redo takes back (its merge, then its undo, its redo...).
The UNDO_DEPTH most recent per document are kept; each holds a copy of the text it landed on, shared once
rebased onto the same text, so a document of n characters costs at most UNDO_DEPTH x n here, and usually n.
"""

from __future__ import annotations

import json
from collections import defaultdict

from . import merge, revert
from .positions import Layout
from .record import DONE, UNDONE, Redraft, UndoState

UNDO_DEPTH = 32


class UndoRefused(Exception):
    """Undo or redo is not possible now: `code` for machines, the message for people."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


class UndoHistory:
    def __init__(self, records: dict[str, Redraft]):
        self.records = records  # the service's redrafts by id (later redrafts are named as authors)
        self.order: defaultdict[str, list[str]] = defaultdict(list)  # doc -> ids with a change, oldest first

    def keep(self, redraft: Redraft, change: revert.Change) -> None:
        """Keeps the change the redraft's next undo or redo takes back; beyond UNDO_DEPTH per document the
        oldest are forgotten (and say so)."""
        redraft.change = change
        order = self.order[redraft.doc]
        if redraft.id in order:
            order.remove(redraft.id)
        order.append(redraft.id)
        while len(order) > UNDO_DEPTH:
            dropped = self.records.get(order.pop(0))
            if dropped is not None:
                dropped.change = None

    def state(self, room, redraft: Redraft) -> UndoState:
        """Whether the redraft can be undone (done) or redone (undone) on the room's text now, and if not, why.
        The answer is kept on the record until the text or the change moves on."""
        if redraft.status not in (DONE, UNDONE):
            return UndoState()
        if redraft.change is None:
            return UndoState(blocked=too_old())
        value = str(room.text)
        seen = (redraft.status, len(value), hash(value))
        checked = redraft.undo_checked
        if checked is not None and checked[0] is redraft.change and checked[1] == seen:
            return checked[2]
        found = revert.rebase(redraft.change, value)
        if isinstance(found, revert.Change):
            redraft.change = found  # later checks diff from here; changes rebased together share the text
            state = UndoState(can_undo=redraft.status == DONE, can_redo=redraft.status == UNDONE)
        else:
            state = UndoState(blocked=self._blocked(room, redraft, found, value))
        redraft.undo_checked = (redraft.change, seen, state)
        return state

    def take_back(self, room, redraft: Redraft) -> None:
        """Applies the inverse of the redraft's last change to the room's text now, as an edit of the live
        document under the origin `redraft:{id}:undo` (or `:redo`), stored and broadcast like any change.
        Raises UndoRefused with the reason."""
        doing = "undo" if redraft.status == DONE else "redo"
        state = self.state(room, redraft)
        if state.blocked is not None:
            raise UndoRefused(f"cannot_{doing}", state.blocked)
        value, change = str(room.text), redraft.change
        assert change is not None and change.landed == value  # state() rebased it onto the text now
        edits = list(change.inverse)
        growth = sum(len(text.encode()) for _, _, text in edits)
        if room.size_bytes + growth > room.max_doc_bytes:
            raise UndoRefused("doc_too_large", f"the document would exceed {room.max_doc_bytes} bytes")

        def apply() -> None:
            with room.doc.transaction(origin=f"{redraft.origin}:{doing}"):
                for start, end, text in reversed(edits):  # last first: earlier offsets stay valid
                    at = len(value[:start].encode())
                    if text:
                        room.text.insert(at, text)
                    if end > start:
                        offset = at + len(text.encode())
                        del room.text[offset : offset + len(value[start:end].encode())]

        room.local_change(apply)
        self.keep(redraft, revert.changed(value, edits))

    def _blocked(self, room, redraft: Redraft, touched: revert.Touched, value: str) -> str:
        """A sentence saying precisely why the redraft cannot be undone (or redone) now."""
        doing, done = ("undo", "undone") if redraft.status == DONE else ("redo", "redone")
        what = "this redraft wrote" if redraft.status == DONE else "its undo put back"
        if touched.is_context_gone and not touched.num_words:
            removed = "this redraft removed" if redraft.status == DONE else "its undo removed"
            return f"the text around what {removed} has since been deleted, so it cannot be {done}"
        words = f"{touched.num_words} of the words" if touched.num_words != 1 else "one of the words"
        who = self._authors(room, touched.inserted, value)
        later = [name for kind, name in who if kind == "redraft"]
        if later:
            return f"a later redraft asked by {later[0]} has since rewritten {words} {what}: undo that one first"
        people = [name for kind, name in who if kind == "person"] or ["someone"]
        subject = people[0] if len(people) == 1 else ", ".join(people[:-1]) + " and " + people[-1]
        return (f"{subject} has since edited {words} {what}; to {doing} it now would overwrite that, "
                "so it can only be done by hand")

    def _authors(self, room, ranges, value: str) -> list[tuple[str, str]]:
        """Who typed the text in these ranges of the text now: ("redraft", requester name) for a redraft's
        merge, ("person", name) for a collaborator present in the document; others are left out."""
        if not ranges:
            return []
        try:
            layout = Layout(room.doc.get_update(), merge.TEXT_NAME, value)
            clients = {layout.char_id(start)[0] for start, _ in ranges}
        except merge.RangeError:
            return []
        found = [("redraft", other.requester["name"]) for other in self.records.values()
                 if other.doc == room.name and other.merge_client in clients]
        names = {}
        states = getattr(room.awareness, "states", room.awareness)  # the room's AwarenessStates
        for entry in states.snapshot():
            if entry.client_id in clients:
                try:
                    user = json.loads(entry.state_json).get("user") or {}
                except (ValueError, AttributeError):
                    continue
                if isinstance(user.get("name"), str) and user["name"]:
                    names[entry.client_id] = user["name"][:64]
        return found + [("person", name) for name in dict.fromkeys(names.values())]


def too_old() -> str:
    return (f"only the {UNDO_DEPTH} most recent redrafts of a document can be undone or redone, "
            "and this one is older (or was made before the server restarted)")
