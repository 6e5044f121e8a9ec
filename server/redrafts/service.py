"""The redraft service: what the HTTP API (api.py) and a version restore ask of redrafts, in this process.

The path of a redraft, a file each:
1. Request (intake.py, after admission.py's queue and rate limits): the range is resolved in the live document
   (request.py, positions.py), pinned with relative positions, and a fork (the whole document as it is now)
   is kept with the passage; the spec (passage, instruction, the text around it) goes to the engine's backend.
2. Lifecycle (lifecycle.py): every snapshot updates the redraft, which the room's AI peer (ai_peer.py)
   publishes, throttled, in awareness; the outcome is cleaned and seamed (seams.py).
3. Merge (merge.py, `apply` at once, `suggest` on accept): the request-time passage is turned into the result
   on the fork, and the room applies that update under the origin `redraft:{id}`, then stores and broadcasts
   it like any client's change: one change for everyone. A waiting suggestion follows others' edits of its
   passage (suggestions.py): the fork-based merge keeps them; it is a conflict once they change the words it
   rewrites, or delete the whole passage. It expires after `redraft_suggestion_ttl_s`.
4. Undo and redo (undo.py, revert.py): each landed change keeps its inverse as text; any redraft whose own
   words nobody has touched since can be taken back, in any order, and put back again, as an edit of the
   live document under the origin `redraft:{id}:undo` / `:redo`, stored and broadcast.

Redrafts live in this server process (the one that took the request): its engine job, fork and undo
history, in memory. A restart loses them (the document keeps every merged change; only the history list
and undo/redo of earlier redrafts are gone). With Redis, the owner publishes each redraft's view and other
replicas list, read and forward accept/undo/redo/cancel here (replicas.py, directory.py). A document's live
jobs are cancelled when its room is unloaded; suggestions wait (they merge into whatever replica is loaded
then), and undo/redo works across an unload (it works on text, not on the replica's items).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from . import attribution, replicas
from .admission import Admission
from .ai_peer import AiPeer, AiPeers
from .backends import EngineBackend
from .directory import Directory, LocalDirectory
from .intake import open_redraft, read_options, submit
from .lifecycle import Lifecycle
from .record import CANCELLED, CONFLICT, DONE, FINAL, LIVE, PENDING, REJECTED, SUGGESTED, UNDONE, Redraft, UndoState
from .request import RedraftError, parse_person
from .suggestions import SuggestionWatch, conflicts
from .undo import UndoHistory, UndoRefused, too_old

log = logging.getLogger(__name__)

SHOW_FINISHED_S = 8.0  # a finished redraft stays in awareness this long, so editors can flash it
KEEP_RECORDS = 256  # finished redrafts kept per process for GET (oldest dropped first)
HISTORY_PAGE = 50  # redrafts in one page of a document's history (at most MAX_HISTORY_PAGE)
MAX_HISTORY_PAGE = 200


class RedraftService:
    def __init__(self, config, rooms, backend: EngineBackend, metrics, directory: Directory | None = None):
        self.config = config
        self.rooms = rooms
        self.backend = backend
        self.metrics = metrics
        self.directory = directory or LocalDirectory()
        self.redrafts: OrderedDict[str, Redraft] = OrderedDict()
        self.peers = AiPeers(config.redraft_preview_hz)
        self._tasks: set[asyncio.Task] = set()
        self.undo_history = UndoHistory(self.redrafts)
        self.admission = Admission(config, metrics)
        self.suggestions = SuggestionWatch(rooms, self.redrafts, self.directory, self._show, self._publish)
        self.lifecycle = Lifecycle(config, metrics, rooms, self.directory, self.undo_history, self.suggestions,
                                   self._show)
        # accept, undo, redo, cancel: what a client or another replica may ask of a redraft
        self.commands = {"accept": self.accept, "undo": self.undo, "redo": self.redo, "cancel": self.cancel}
        rooms.unload_listeners.append(self._on_unload)
        metrics.redraft_queue.set_function(self.queue_length)

    async def start(self) -> None:
        await self.backend.start()
        await self.directory.start(self.run_command)

    # --- request ---------------------------------------------------------------------------------------

    async def create(self, doc: str, body: dict, user_key: str, verified_name: str | None = None) -> Redraft:
        """`verified_name`: the token's signed name, which the history shows as the requester instead of
        the name the body claims (that one is shown unverified)."""
        options = read_options(self.backend, body, verified_name)
        self.admission.admit(doc, user_key, self.queue_length())
        room = await self.rooms.acquire(doc)
        try:
            redraft = await open_redraft(self.backend, self.config, room, options, body, user_key)
            await submit(self.backend, self.config, redraft)
            self._remember(redraft)
            self._show(redraft)
            self._spawn(self.lifecycle.run(redraft))
            return redraft
        finally:
            self.rooms.release(room)

    def land_restore(self, redraft: Redraft, update: bytes, client_id: int) -> None:
        """A restore (history/restore.py) lands like a redraft's merge: one edit of the live document, kept
        for undo and redo here and listed with the redrafts. `update` was made on its fork by `client_id`."""
        self._remember(redraft)
        self.lifecycle.merge(redraft, update, client_id)

    # --- accept, undo, cancel, reject -----------------------------------------------------------------

    async def accept(self, doc: str, redraft_id: str, by: dict | None = None) -> Redraft:
        redraft = self.get(doc, redraft_id)
        _check_acceptable(redraft)
        room = await self.rooms.acquire(doc)
        try:
            _check_acceptable(redraft)  # again: another accept (or an expiry) may have run while the room loaded
            if conflicts(room, redraft):
                redraft.status = CONFLICT
                self._show(redraft)
                raise RedraftError(409, "conflict", _conflict_detail())
            self.lifecycle.merge(redraft)
        finally:
            self.rooms.release(room)
        return redraft

    async def undo(self, doc: str, redraft_id: str, by: dict | None = None) -> Redraft:
        return await self._take_back(self.get(doc, redraft_id), UNDONE, by)

    async def redo(self, doc: str, redraft_id: str, by: dict | None = None) -> Redraft:
        return await self._take_back(self.get(doc, redraft_id), DONE, by)

    async def _take_back(self, redraft: Redraft, status: str, by: dict | None = None) -> Redraft:
        """Undo after its merge or redo, redo after its undo: on the text as it is now, or a 409 saying why."""
        _check_reversible(redraft, status)
        room = await self.rooms.acquire(redraft.doc)
        try:
            _check_reversible(redraft, status)  # again: a second click may have undone it while the room loaded
            doing = "undo" if status == UNDONE else "redo"
            self.undo_history.take_back(room, redraft, *attribution.take_back_change(redraft, doing, by))
        except UndoRefused as exc:
            raise RedraftError(409, exc.code, exc.detail) from exc
        finally:
            self.rooms.release(room)
        self.lifecycle.end(redraft, status)
        return redraft

    def undo_state(self, redraft: Redraft) -> UndoState:
        """Whether the redraft can be undone or redone now, judged on its loaded room's text."""
        room = self.rooms.loaded(redraft.doc)
        if redraft.status in (DONE, UNDONE) and (room is None or room.is_closed):
            # Nobody is in the document, so nobody changed it since it closed: the last answer stands.
            checked = redraft.undo_checked
            if checked is not None and checked.change is redraft.change:
                return checked.state
            return UndoState(can_undo=redraft.status == DONE and redraft.change is not None,
                             can_redo=redraft.status == UNDONE and redraft.change is not None,
                             blocked=None if redraft.change is not None else too_old())
        return self.undo_history.state(room, redraft) if room is not None else UndoState()

    async def cancel(self, doc: str, redraft_id: str, by: dict | None = None) -> Redraft:
        """Cancels a queued or running redraft, rejects a suggestion, dismisses a conflict."""
        redraft = self.get(doc, redraft_id)
        if redraft.status in LIVE:
            redraft.status = CANCELLED
            redraft.error = "cancelled by a user"
            if redraft.job is not None:
                redraft.job.cancel()
            self._show(redraft)
        elif redraft.status in PENDING:
            redraft.rejected_by = by or parse_person({})  # {"name": "Someone"} when the client did not say
            self.lifecycle.end(redraft, REJECTED)
        else:
            raise RedraftError(409, "finished", f"this redraft is already {redraft.status}")
        return redraft

    def _on_unload(self, doc: str) -> None:
        for redraft in self.redrafts.values():
            if redraft.doc == doc and redraft.status in LIVE:
                redraft.status = CANCELLED
                redraft.error = "the document was closed (everyone left)"
                if redraft.job is not None:
                    redraft.job.cancel()
        self.peers.close(doc)
        self.suggestions.forget(doc)  # the room and its subscriptions are gone
        self.undo_history.forget(doc)

    # --- any replica: status and commands (replicas.py) ------------------------------------------------

    def to_json(self, redraft: Redraft) -> dict:
        return redraft.to_json(self.undo_state(redraft))

    async def view(self, doc: str, redraft_id: str) -> dict:
        return await replicas.view(self, doc, redraft_id)

    async def history(self, doc: str, limit: int = HISTORY_PAGE, before: float | None = None) -> list[dict]:
        return await replicas.history(self, doc, limit, before)

    async def command(self, doc: str, redraft_id: str, action: str, by: dict | None = None) -> dict:
        return await replicas.command(self, doc, redraft_id, action, by)

    async def run_command(self, doc: str, redraft_id: str, action: str, by: dict | None = None) -> tuple[int, dict]:
        return await replicas.run_command(self, doc, redraft_id, action, by)

    # --- bookkeeping -----------------------------------------------------------------------------------

    def get(self, doc: str, redraft_id: str) -> Redraft:
        redraft = self.redrafts.get(redraft_id)
        if redraft is None or redraft.doc != doc:
            raise replicas.unknown(doc, redraft_id)
        return redraft

    def _remember(self, redraft: Redraft) -> None:
        self.redrafts[redraft.id] = redraft
        finished = [r.id for r in self.redrafts.values() if r.status in FINAL]
        for redraft_id in finished[: max(0, len(finished) - KEEP_RECORDS)]:
            del self.redrafts[redraft_id]

    def _show(self, redraft: Redraft) -> None:
        """Publishes the redraft's state in its room's awareness (a finished one leaves after a while), and
        its status to the other replicas."""
        self._publish(redraft)
        room = self.rooms.loaded(redraft.doc)
        if room is None or room.is_closed or redraft.is_restore:  # editors draw redrafts; a restore is no preview
            return
        peer = self.peers.of(room)
        peer.show(redraft)
        if redraft.status in FINAL:
            asyncio.get_running_loop().call_later(SHOW_FINISHED_S, self._hide, peer, redraft)

    def _publish(self, redraft: Redraft) -> None:
        """Records the redraft's view for the other replicas to list and read (directory.py)."""
        self.directory.record(redraft, self.to_json(redraft))

    def _hide(self, peer: AiPeer, redraft: Redraft) -> None:
        if redraft.status in FINAL:
            peer.hide(redraft.id)

    def queue_length(self) -> int:
        return sum(r.status in LIVE for r in self.redrafts.values())

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for redraft in self.redrafts.values():
            if redraft.job is not None:
                redraft.job.cancel()
        self.peers.close_all()
        self.suggestions.close()
        await self.directory.close()
        await self.backend.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _check_acceptable(redraft: Redraft) -> None:
    if redraft.status == CONFLICT:
        raise RedraftError(409, "conflict", _conflict_detail())
    if redraft.status != SUGGESTED:
        raise RedraftError(409, "not_suggested", f"only a suggestion can be accepted; this one is {redraft.status}")


def _check_reversible(redraft: Redraft, status: str) -> None:
    """Undo (to UNDONE) needs an applied redraft, redo (to DONE) an undone one."""
    if status == UNDONE and redraft.status != DONE:
        raise RedraftError(409, "not_applied", f"only an applied redraft can be undone; this one is {redraft.status}")
    if status == DONE and redraft.status != UNDONE:
        raise RedraftError(409, "not_undone", f"only an undone redraft can be redone; this one is {redraft.status}")


def _conflict_detail() -> str:
    return (
        "after this suggestion was made, the words it rewrites were changed (or the whole passage deleted), "
        "so it cannot be put in without overwriting that; reject it and ask again"
    )
