"""Undo and redo of a document's redrafts on its loaded room: whether each can be taken back now, why not
(naming who changed its words), and the edit that takes it back (the text side is revert.py).

Each redraft keeps the change its next undo or redo takes back (its merge, then its undo, its redo...).
The UNDO_DEPTH most recent per document are kept. While the document is loaded its edits are followed as
they happen (each transaction's delta moves every change along, exactly: no diff, no ambiguity), so the
changes all stand on one shared copy of the text; a change that others' edits touched, or one kept from
before the document was last loaded, is judged by a diff (revert.rebase) when asked. A document of n
characters thus costs about n here, at most UNDO_DEPTH x n.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import NamedTuple

from ..room import TEXT_NAME, TooLarge
from . import revert
from .positions import Layout, RangeError
from .record import DONE, UNDONE, Redraft, UndoCheck, UndoState

log = logging.getLogger(__name__)

UNDO_DEPTH = 32


class UndoRefused(Exception):
    """Undo or redo is not possible now: `code` for machines, the message for people."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


class _Followed(NamedTuple):
    """A loaded room whose text edits are followed, and the subscription that follows them."""

    room: object
    subscription: object


class UndoHistory:
    def __init__(self, records: dict[str, Redraft]):
        self.records = records  # the service's redrafts by id (later redrafts are named as authors)
        self.order: defaultdict[str, list[str]] = defaultdict(list)  # doc -> ids with a change, oldest first
        self.texts: dict[str, str] = {}  # doc -> its text as of the last edit followed
        self.followed: dict[str, _Followed] = {}  # doc -> the room followed, while it is loaded

    def keep(self, room, redraft: Redraft, change: revert.Change) -> None:
        """Keeps the change the redraft's next undo or redo takes back; beyond UNDO_DEPTH per document the
        oldest are forgotten (and say so)."""
        text = self.follow(room)
        redraft.change = revert.Change(text, change.inverse) if text == change.landed else change
        order = self.order[redraft.doc]
        if redraft.id in order:
            order.remove(redraft.id)
        order.append(redraft.id)
        while len(order) > UNDO_DEPTH:
            dropped = self.records.get(order.pop(0))
            if dropped is not None:
                dropped.change = None

    def follow(self, room) -> str:
        """Follows the room's edits from now on (once per loaded room); returns its text as followed."""
        followed = self.followed.get(room.name)
        if followed is None or followed.room is not room:
            self.texts[room.name] = room.read_text()
            subscription = room.observe_text(lambda event: self._on_edit(room.name, event))
            self.followed[room.name] = _Followed(room, subscription)
        elif room.name not in self.texts:  # following failed once: the same subscription goes on from here
            self.texts[room.name] = room.read_text()
        return self.texts[room.name]

    def forget(self, doc: str) -> None:
        """The document's room was unloaded (its subscriptions went with it)."""
        self.followed.pop(doc, None)
        self.texts.pop(doc, None)

    def _on_edit(self, doc: str, event) -> None:
        """One transaction's edits: every change that stood on the text before it moves along exactly."""
        text = self.texts.get(doc)
        if text is None:  # lost track after a failure: `follow` takes the text afresh
            return
        try:
            edits, now = revert.delta_edits(text, event.delta)
            for redraft_id in self.order.get(doc, ()):
                redraft = self.records.get(redraft_id)
                if redraft is not None and redraft.change is not None and redraft.change.landed is text:
                    moved = revert.rebase_along(redraft.change, now, edits)
                    if isinstance(moved, revert.Change):  # else it stays where it was, for `state` to explain
                        redraft.change = moved
            self.texts[doc] = now
        except Exception:  # never break the transaction; `state` resynchronises from the text
            log.exception("following the edits of %s failed", doc)
            self.texts.pop(doc, None)  # the subscription stays: a second one would see every edit twice

    def state(self, room, redraft: Redraft) -> UndoState:
        """Whether the redraft can be undone (done) or redone (undone) on the room's text now, and if not, why.
        The answer is kept on the record until the text or the change moves on."""
        if redraft.status not in (DONE, UNDONE):
            return UndoState()
        if redraft.change is None:
            return UndoState(blocked=too_old())
        value = self.follow(room)
        if value != room.read_text():  # should not happen: every transaction's delta is followed
            log.warning("the followed text of %s drifted from the document; following it afresh", room.name)
            self.forget(room.name)
            value = self.follow(room)
        seen = (redraft.status, len(value), hash(value))
        checked = redraft.undo_checked
        if checked is not None and checked.change is redraft.change and checked.seen == seen:
            return checked.state
        found = redraft.change if redraft.change.landed is value else revert.rebase(redraft.change, value)
        if isinstance(found, revert.Change):
            redraft.change = revert.Change(value, found.inverse)  # on the followed text from now on
            state = UndoState(can_undo=redraft.status == DONE, can_redo=redraft.status == UNDONE)
        else:
            state = UndoState(blocked=self._blocked(room, redraft, found, value))
        redraft.undo_checked = UndoCheck(redraft.change, seen, state)
        return state

    def take_back(self, room, redraft: Redraft, author, origin) -> None:
        """Applies the inverse of the redraft's last change to the room's text now, as an edit of the live
        document under the origin `redraft:{id}:undo` (or `:redo`), stored and broadcast like any change.
        `author` and `origin` are what the history records it as (attribution.take_back_change).
        Raises UndoRefused with the reason."""
        doing = "undo" if redraft.status == DONE else "redo"
        state = self.state(room, redraft)
        if state.blocked is not None:
            raise UndoRefused(f"cannot_{doing}", state.blocked)
        value, change = room.read_text(), redraft.change
        assert change is not None and change.landed == value  # state() rebased it onto the text now
        edits = list(change.inverse)
        try:
            room.replace_text(value, edits, f"{redraft.origin}:{doing}", author, origin)
        except TooLarge as exc:
            raise UndoRefused("doc_too_large", str(exc)) from exc
        self.keep(room, redraft, revert.changed(value, edits))

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
            update, _ = room.snapshot()
            layout = Layout(update, TEXT_NAME, value)
            clients = {layout.char_id(start)[0] for start, _ in ranges}
        except RangeError:
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
