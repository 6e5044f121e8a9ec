"""Watching a document's text while its suggestions wait: a suggestion whose passage others edit says so, and
one whose rewritten words they change (or whose passage they delete) becomes a conflict. With Redis, the same
watch republishes undo states after others' typing, for other replicas to list."""

from __future__ import annotations

import asyncio

from . import merge, revert
from .record import CONFLICT, DONE, SUGGESTED, UNDONE, Redraft

REPUBLISH_S = 1.0  # with Redis, undo states are republished this long after an edit (other replicas list them)


def conflicts(room, redraft: Redraft) -> bool:
    """Whether the suggestion can no longer be merged: its whole passage was deleted since, or the words
    it rewrites were changed. Typing elsewhere in the passage is no conflict: the fork-based merge keeps
    it (the suggestion says `passage_edited`)."""
    changes = revert.diff(redraft.fork.value, room.read_text())
    redraft.is_passage_edited, is_clashing = merge.passage_state(redraft.fork, changes, redraft.text)
    return is_clashing


class SuggestionWatch:
    """`show(redraft)` publishes a redraft that changed; `publish(redraft)` only records its view for other
    replicas (directory.py)."""

    def __init__(self, rooms, redrafts: dict[str, Redraft], directory, show, publish):
        self.rooms = rooms
        self.redrafts = redrafts
        self.directory = directory
        self.show = show
        self.publish = publish
        self._watchers: dict[str, object] = {}  # doc -> text subscription while suggestions wait (or, shared, undo)
        self._republish: dict[str, asyncio.TimerHandle] = {}  # doc -> pending republish of undo states

    def watch(self, doc: str) -> None:
        room = self.rooms.loaded(doc)
        if room is not None and doc not in self._watchers:
            self._watchers[doc] = room.observe_text(lambda _event: self._recheck_soon(doc))

    def _recheck_soon(self, doc: str) -> None:
        # Called inside the transaction: look once it has committed.
        asyncio.get_running_loop().call_soon(self.recheck, doc)

    def recheck(self, doc: str) -> None:
        room = self.rooms.loaded(doc)
        if room is None:
            return
        for redraft in self.redrafts.values():
            # A conflict stays one: a passage typed again (or restored by a client's undo) is made of new
            # characters, and the suggestion's edits are pinned to the deleted ones.
            if redraft.doc == doc and redraft.status == SUGGESTED:
                was_edited = redraft.is_passage_edited
                if conflicts(room, redraft):
                    redraft.status = CONFLICT
                    self.show(redraft)
                elif redraft.is_passage_edited != was_edited:
                    self.show(redraft)
        if self.directory.is_shared and doc not in self._republish:
            # Others' typing may change whether a redraft can be undone: other replicas list the owner's view.
            self._republish[doc] = asyncio.get_running_loop().call_later(REPUBLISH_S, self._republish_undo, doc)
        self.unwatch_if_idle(doc)

    def _republish_undo(self, doc: str) -> None:
        self._republish.pop(doc, None)
        for redraft in list(self.redrafts.values()):
            if redraft.doc == doc and redraft.status in (DONE, UNDONE):
                self.publish(redraft)

    def unwatch_if_idle(self, doc: str) -> None:
        is_shared = self.directory.is_shared
        if doc in self._watchers and not any(
            r.doc == doc and (r.status == SUGGESTED or (is_shared and r.change is not None))
            for r in self.redrafts.values()
        ):
            room = self.rooms.loaded(doc)
            subscription = self._watchers.pop(doc)
            if room is not None:
                room.unobserve_text(subscription)

    def forget(self, doc: str) -> None:
        """The document's room was unloaded (its subscriptions went with it)."""
        self._watchers.pop(doc, None)

    def close(self) -> None:
        for timer in self._republish.values():
            timer.cancel()
