"""The redraft lifecycle: request, engine, live preview, merge, suggest/accept, undo, cancel.

1. Request: the range is resolved in the live document, pinned with relative positions, and a fork (the
   whole document as it is now) is kept with the passage.
2. Engine: the spec (passage, instruction, the text around it) goes to the backend; every snapshot updates
   the redraft, which the room's AI peer publishes (throttled) in awareness.
3. Merge (`apply` at once, `suggest` on accept): `merge.merge_update` turns the request-time passage into
   the result on the fork; its update is applied to the live replica inside a transaction with origin
   `redraft:{id}`, then stored and broadcast like any client's change: one change for everyone.
4. Undo and redo (revert.py): each landed change keeps its inverse as text; any redraft whose own words
   nobody has touched since can be taken back, in any order, and put back again. Each undo or redo is an
   edit of the live document under the origin `redraft:{id}:undo` / `:redo`, stored and broadcast.
5. A suggestion waits for accept or reject until `redraft_suggestion_ttl_s`, then expires. Others may edit
   its passage meanwhile: the fork-based merge keeps their edits (it is a conflict once they change the
   words it rewrites, or delete the whole passage).

Redrafts live in this server process (the one that took the request): its engine job, fork and undo
history, in memory. A restart loses them (the document keeps every merged change; only the history list
and undo/redo of earlier redrafts are gone). With Redis, the owner publishes each redraft's view and other
replicas list, read and forward accept/undo/redo/cancel here (directory.py). A document's live jobs are
cancelled when its room is unloaded; suggestions wait (they merge into whatever replica is loaded then),
and undo/redo works across an unload (it works on text, not on the replica's items).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import OrderedDict

from jobs.tasks import instruction_for, task_for

from ..ratelimit import BucketMap
from ..room import Room
from ..updates import decode_state_vector
from . import attribution, merge, revert, seams
from .ai_peer import AiPeer
from .backends import EngineBackend, EngineFailed, EngineRejected, EngineUnavailable
from .directory import Directory, LocalDirectory, OwnerUnreachable
from .record import (
    CANCELLED,
    CONFLICT,
    DONE,
    EXPIRED,
    FAILED,
    FINAL,
    LIVE,
    PENDING,
    QUEUED,
    REJECTED,
    RUNNING,
    SUGGESTED,
    UNDONE,
    Redraft,
    UndoState,
)
from .request import RedraftError, check_kind, parse_options, parse_person, place
from .undo import UndoHistory, UndoRefused, too_old

log = logging.getLogger(__name__)

SHOW_FINISHED_S = 8.0  # a finished redraft stays in awareness this long, so editors can flash it
KEEP_RECORDS = 256  # finished redrafts kept per process for GET (oldest dropped first)
REPUBLISH_S = 1.0  # with Redis, undo states are republished this long after an edit (other replicas list them)
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
        self.peers: dict[str, AiPeer] = {}  # doc -> AI peer of its loaded room
        self._tasks: set[asyncio.Task] = set()
        self.undo_history = UndoHistory(self.redrafts)
        self._watchers: dict[str, object] = {}  # doc -> text subscription while suggestions wait (or, shared, undo)
        self._republish: dict[str, asyncio.TimerHandle] = {}  # doc -> pending republish of undo states
        self._user_buckets = BucketMap(config.redraft_user_per_min / 60.0, config.redraft_user_burst)
        self._doc_buckets = BucketMap(config.redraft_doc_per_min / 60.0, config.redraft_doc_burst)
        rooms.unload_listeners.append(self._on_unload)
        metrics.redraft_queue.set_function(self.queue_length)

    async def start(self) -> None:
        await self.backend.start()
        await self.directory.start(self.run_command)

    # --- request ---------------------------------------------------------------------------------------

    async def create(self, doc: str, body: dict, user_key: str, verified_name: str | None = None) -> Redraft:
        """`verified_name`: the token's signed name, which the history shows as the requester instead of
        the name the body claims (that one is shown unverified)."""
        kind, task, mode, instruction, requester, steps, seed = parse_options(body)
        if kind is not None:  # known already: refused before it counts against the rate limits
            task = self._task(kind, task, instruction)
        if verified_name is not None:
            requester = {**requester, "name": verified_name, "verified": True}
        else:
            requester = {**requester, "verified": False}
        self._admit(doc, user_key)
        room = await self.rooms.acquire(doc)
        try:
            if room.doc.get_state() == b"\x00":
                raise RedraftError(404, "unknown_doc", f"document {doc!r} does not exist (it has never been edited)")
            # One state of the document for everything below: the live one moves on while a thread maps it.
            snapshot, value = room.doc.get_update(), str(room.text)
            start, end, anchors = await asyncio.to_thread(place, snapshot, value, body)
            if kind is None:  # an older client's request that names neither: the range says which
                kind = "rewrite" if end > start else "fill"
                task = self._task(kind, task, instruction)
            # The prompt's instruction: the task's own, or the person's for `instruct` (also what history shows).
            instruction = instruction_for(task, instruction)
            check_kind(kind, value[start:end])
            length = merge.utf16_length(value[start:end])
            if length > self.config.redraft_max_chars:
                raise RedraftError(
                    413, "range_too_long", f"the range is {length} characters; at most {self.config.redraft_max_chars}"
                )
            fork = merge.Fork(snapshot, start, end, value[start:end], value)
            redraft = Redraft(
                id=secrets.token_urlsafe(9),
                doc=doc,
                kind=kind,
                task=task,
                mode=mode,
                instruction=instruction,
                requester=requester,
                user_key=user_key,
                anchors=anchors,
                fork=fork,
                steps=steps,
                seed=seed if seed is not None else secrets.randbits(31),
                model=self.backend.status().get("model"),
            )
            context = self.config.redraft_context_chars
            spec = {
                "id": redraft.id,
                "kind": kind,
                "task": task,
                "passage": fork.passage,
                "instruction": instruction,
                "before": value[max(0, start - context) : start],
                "after": value[end : end + context] if kind != "continue" else "",
                "steps": steps,
                "seed": redraft.seed,
            }
            try:
                redraft.job = await self.backend.submit(spec)
            except EngineUnavailable as exc:
                raise RedraftError(503, "engine_unavailable", str(exc)) from exc
            except EngineRejected as exc:
                raise RedraftError(400, "engine_rejected", str(exc)) from exc
            self._remember(redraft)
            self._show(redraft)
            self._spawn(self._run(redraft))
            return redraft
        finally:
            self.rooms.release(room)

    def _task(self, kind: str, task: str | None, instruction: str) -> str:
        """The request's task (named, or what an older client's kind and instruction meant), refused when the
        engine's model does not declare it: in words that say what it does instead."""
        task = task or task_for(kind, instruction)
        refusal = self.backend.model().refusal(task)
        if refusal is not None:
            raise RedraftError(400, "task_not_supported", refusal)
        return task

    def _admit(self, doc: str, user_key: str) -> None:
        config = self.config
        live = self.queue_length()
        if live >= config.redraft_queue_max:
            self.metrics.refused("redraft_queue_full")
            raise RedraftError(
                429, "queue_full", f"{live} redrafts are waiting or running; try again shortly", retry_after_s=2.0
            )
        for key, buckets, per_min, what in (
            (user_key, self._user_buckets, config.redraft_user_per_min, "you"),
            (doc, self._doc_buckets, config.redraft_doc_per_min, "this document"),
        ):
            bucket = buckets.get(key)
            if not bucket.take():
                self.metrics.refused("redraft_rate_limited")
                raise RedraftError(
                    429,
                    "rate_limited",
                    f"too many redrafts for {what}: at most {per_min:g} a minute",
                    retry_after_s=bucket.seconds_until(),
                )

    # --- engine -> preview -> merge ---------------------------------------------------------------------

    async def _run(self, redraft: Redraft) -> None:
        job = redraft.job
        try:
            async for progress in job:
                self._progress(redraft, progress)
            outcome = await job.result()
        except EngineFailed as exc:
            return self._end(redraft, FAILED, f"the engine failed: {exc}")
        except Exception as exc:  # a bug must not leave the redraft running forever
            log.exception("redraft %s failed", redraft.id)
            return self._end(redraft, FAILED, f"internal error: {exc}")
        finally:
            redraft.job = None
        if outcome["status"] == "cancelled" or redraft.status == CANCELLED:
            return self._end(redraft, CANCELLED, redraft.error or "cancelled")
        self._land(redraft, outcome)

    def _land(self, redraft: Redraft, outcome: dict) -> None:
        """The engine's outcome: cleaned and seamed text, merged at once or kept as a suggestion."""
        for name in ("queue_s", "prefill_s", "denoise_s"):
            redraft.timings[name.removesuffix("_s")] = outcome["timings"].get(name, 0.0)
        redraft.engine_steps, redraft.engine_tokens = outcome["steps"], outcome["tokens"]
        # the model's EOS may end it before the budget's last canvas (a streaming model counts tokens: they stand)
        if redraft.progress["max_steps"] and not redraft.progress.get("streaming"):
            redraft.progress = {"step": redraft.progress["max_steps"], "max_steps": redraft.progress["max_steps"]}
        self.metrics.redraft_generated(outcome["steps"], outcome["tokens"], outcome["timings"].get("denoise_s", 0.0))
        fork, written = redraft.fork, seams.clean(outcome["text"], redraft.original)
        if not outcome.get("complete", True):  # the budget, not the model, ended it
            written = seams.trim_unfinished(written)
        text = seams.frame(redraft.kind, redraft.original, written, fork.value[: fork.start], fork.value[fork.end :])
        if not text.strip():
            return self._end(redraft, FAILED, "the model returned no text; the passage was left as it was")
        redraft.text = text
        if redraft.mode == "suggest":
            redraft.status = SUGGESTED
            redraft.expires_at = time.time() + self.config.redraft_suggestion_ttl_s
            asyncio.get_running_loop().call_later(self.config.redraft_suggestion_ttl_s, self._expire, redraft)
            self._watch(redraft.doc)
            self._recheck(redraft.doc)
            self._show(redraft)
            self._finish_timing(redraft)
            self.metrics.redraft_landed(redraft.timings["total"])
            return
        self._merge(redraft)
        if redraft.status == DONE:
            self.metrics.redraft_landed(redraft.timings["total"])

    def _progress(self, redraft: Redraft, progress: dict) -> None:
        if redraft.status == QUEUED:
            redraft.status = RUNNING
            redraft.timings["first_snapshot"] = time.perf_counter() - redraft.started
            self.metrics.redraft_first_snapshot(redraft.timings["first_snapshot"])
        if progress.get("retry"):  # a worker died: the job starts over on another one (progress holds)
            redraft.step, redraft.preview_text, redraft.tokens = 0, "", []
        else:
            redraft.step, redraft.max_steps = progress["step"], progress["max_steps"]
            redraft.preview_text = seams.clean(progress["text"], redraft.original)
            redraft.tokens = progress["tokens"]
            redraft.progress = overall_progress(redraft.progress, progress)
        self._show(redraft)

    def _merge(self, redraft: Redraft, update: bytes | None = None, client_id: int | None = None) -> None:
        """Lands the redraft's text: `update` (made on the fork by `client_id`) when the caller made it
        already, off the event loop (a restore of a long document), else made here."""
        room = self.rooms.rooms.get(redraft.doc)
        if room is None or room.is_closed:
            # Only a suggestion can outlive its room (accept re-acquires it first).
            return self._end(redraft, FAILED, "the document was closed before the redraft could land")
        started = time.perf_counter()
        if update is None:
            client_id = merge.fresh_client_id(set(decode_state_vector(room.doc.get_state())))
            try:
                update = merge.merge_update(redraft.fork, redraft.text, client_id=client_id)
            except ValueError as exc:  # not valid text: seams.clean should have caught it
                return self._end(redraft, FAILED, f"the model's text could not be merged: {exc}")
        # the limit is on the stored document (the log, which compaction folds away, does not count)
        if not room.fits(len(update), update):
            return self._end(redraft, FAILED, f"the document would exceed {room.max_doc_bytes} bytes")

        def apply() -> None:
            with room.doc.transaction(origin=redraft.origin):
                room.doc.apply_update(update)

        before = str(room.text)
        author, origin = attribution.merge_change(redraft)
        room.local_change(apply, author=author, origin=origin)
        redraft.merge_client = client_id
        self.undo_history.keep(room, redraft, revert.observed(before, str(room.text)))
        if self.directory.is_shared:
            self._watch(redraft.doc)
        redraft.timings["merge"] = time.perf_counter() - started
        self._end(redraft, DONE)

    def _end(self, redraft: Redraft, status: str, error: str | None = None) -> None:
        redraft.status = status
        if error is not None and status in (FAILED, CANCELLED, EXPIRED):
            redraft.error = error
        self._finish_timing(redraft)
        if status in FINAL and redraft.fork.snapshot:  # nothing merges from the fork any more: free the copies
            redraft.fork = dataclasses.replace(redraft.fork, snapshot=b"", value="")
        if not redraft.is_restore:  # the redraft metrics count the engine's work
            self.metrics.redraft_ended(status)
        self._show(redraft)
        self._unwatch_if_idle(redraft.doc)

    def _finish_timing(self, redraft: Redraft) -> None:
        redraft.timings["total"] = time.perf_counter() - redraft.started

    def land_restore(self, redraft: Redraft, update: bytes, client_id: int) -> None:
        """A restore (history/restore.py) lands like a redraft's merge: one edit of the live document, kept
        for undo and redo here and listed with the redrafts. `update` was made on its fork by `client_id`."""
        self._remember(redraft)
        self._merge(redraft, update, client_id)

    # --- suggestions: accept, conflicts ----------------------------------------------------------------

    async def accept(self, doc: str, redraft_id: str, by: dict | None = None) -> Redraft:
        redraft = self.get(doc, redraft_id)
        _check_acceptable(redraft)
        room = await self.rooms.acquire(doc)
        try:
            _check_acceptable(redraft)  # again: another accept (or an expiry) may have run while the room loaded
            if self._conflicts(room, redraft):
                redraft.status = CONFLICT
                self._show(redraft)
                raise RedraftError(409, "conflict", _conflict_detail())
            self._merge(redraft)
        finally:
            self.rooms.release(room)
        return redraft

    def _conflicts(self, room: Room, redraft: Redraft) -> bool:
        """Whether the suggestion can no longer be merged: its whole passage was deleted since, or the words
        it rewrites were changed. Typing elsewhere in the passage is no conflict: the fork-based merge keeps
        it (the suggestion says `passage_edited`)."""
        changes = revert.diff(redraft.fork.value, str(room.text))
        redraft.is_passage_edited, is_clashing = merge.passage_state(redraft.fork, changes, redraft.text)
        return is_clashing

    def _watch(self, doc: str) -> None:
        room = self.rooms.rooms.get(doc)
        if room is not None and doc not in self._watchers:
            self._watchers[doc] = room.text.observe(lambda _event: self._recheck_soon(doc))

    def _recheck_soon(self, doc: str) -> None:
        # Called inside the transaction: look once it has committed.
        asyncio.get_running_loop().call_soon(self._recheck, doc)

    def _recheck(self, doc: str) -> None:
        room = self.rooms.rooms.get(doc)
        if room is None:
            return
        for redraft in self.redrafts.values():
            # A conflict stays one: a passage typed again (or restored by a client's undo) is made of new
            # characters, and the suggestion's edits are pinned to the deleted ones.
            if redraft.doc == doc and redraft.status == SUGGESTED:
                was_edited = redraft.is_passage_edited
                if self._conflicts(room, redraft):
                    redraft.status = CONFLICT
                    self._show(redraft)
                elif redraft.is_passage_edited != was_edited:
                    self._show(redraft)
        if self.directory.is_shared and doc not in self._republish:
            # Others' typing may change whether a redraft can be undone: other replicas list the owner's view.
            self._republish[doc] = asyncio.get_running_loop().call_later(REPUBLISH_S, self._republish_undo, doc)
        self._unwatch_if_idle(doc)

    def _republish_undo(self, doc: str) -> None:
        self._republish.pop(doc, None)
        for redraft in list(self.redrafts.values()):
            if redraft.doc == doc and redraft.status in (DONE, UNDONE):
                self.directory.record(redraft, self.to_json(redraft))

    def _expire(self, redraft: Redraft) -> None:
        if redraft.status in PENDING:
            self._end(redraft, EXPIRED, f"nobody accepted it within {self.config.redraft_suggestion_ttl_s:g} s")

    def _unwatch_if_idle(self, doc: str) -> None:
        is_shared = self.directory.is_shared
        if doc in self._watchers and not any(
            r.doc == doc and (r.status == SUGGESTED or (is_shared and r.change is not None))
            for r in self.redrafts.values()
        ):
            room = self.rooms.rooms.get(doc)
            subscription = self._watchers.pop(doc)
            if room is not None:
                room.text.unobserve(subscription)

    # --- undo, cancel, reject --------------------------------------------------------------------------

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
        self._end(redraft, status)
        return redraft

    def undo_state(self, redraft: Redraft) -> UndoState:
        """Whether the redraft can be undone or redone now, judged on its loaded room's text."""
        room = self.rooms.rooms.get(redraft.doc)
        if redraft.status in (DONE, UNDONE) and (room is None or room.is_closed):
            # Nobody is in the document, so nobody changed it since it closed: the last answer stands.
            checked = redraft.undo_checked
            if checked is not None and checked[0] is redraft.change:
                return checked[2]
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
            self._end(redraft, REJECTED)
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
        peer = self.peers.pop(doc, None)
        if peer is not None:
            peer.close()
        self._watchers.pop(doc, None)  # the room and its subscriptions are gone
        self.undo_history.forget(doc)

    # --- any replica: status and commands ---------------------------------------------------------------

    def to_json(self, redraft: Redraft) -> dict:
        return redraft.to_json(self.undo_state(redraft))

    async def view(self, doc: str, redraft_id: str) -> dict:
        """The redraft's HTTP resource, from this process or, when another replica holds it, its last view."""
        if redraft_id in self.redrafts:
            return self.to_json(self.get(doc, redraft_id))
        return (await self._elsewhere(doc, redraft_id))["view"]

    async def history(self, doc: str, limit: int = HISTORY_PAGE, before: float | None = None) -> list[dict]:
        """The document's redrafts, newest first: this process's, with undo and redo judged now, and those
        other replicas hold, as their owners last published them (directory.py)."""
        views = {
            r.id: self.to_json(r)
            for r in reversed(self.redrafts.values())
            if r.doc == doc and (before is None or r.created < before)
        }
        try:
            for view in await self.directory.history(doc, limit, before):
                views.setdefault(view["id"], view)
        except Exception as exc:  # Redis away: this replica's own still answer
            log.warning("listing other replicas' redrafts failed: %s", exc)
        return sorted(views.values(), key=lambda view: view["created_at"], reverse=True)[:limit]

    async def command(self, doc: str, redraft_id: str, action: str, by: dict | None = None) -> dict:
        """accept, undo, redo or cancel, run here or by the replica that holds the redraft."""
        if redraft_id in self.redrafts:
            return self.to_json(await COMMANDS[action](self, doc, redraft_id, by=by))
        where = await self._elsewhere(doc, redraft_id)
        try:
            status, body = await self.directory.forward(where["owner"], doc, redraft_id, action, by)
        except OwnerUnreachable as exc:
            raise RedraftError(503, "owner_unreachable", f"{exc}; the redraft cannot be changed any more") from exc
        if status != 200:
            raise RedraftError(status, body.get("error", "error"), body.get("detail", ""), body.get("retry_after_s"))
        return body

    async def run_command(self, doc: str, redraft_id: str, action: str, by: dict | None = None) -> tuple[int, dict]:
        """A command another replica forwarded: answered as this process's HTTP API would."""
        if action not in COMMANDS:
            return 400, {"error": "bad_request", "detail": f"unknown redraft action {action!r}"}
        try:
            # `by` was resolved by the replica that took the request (its token's name, verified)
            return 200, self.to_json(await COMMANDS[action](self, doc, redraft_id, by=attribution.trusted_person(by)))
        except RedraftError as exc:
            return exc.status, {"error": exc.code, "detail": exc.detail, "retry_after_s": exc.retry_after_s}

    async def _elsewhere(self, doc: str, redraft_id: str) -> dict:
        try:
            where = await self.directory.lookup(redraft_id)
        except Exception as exc:  # Redis away: say so rather than pretend the redraft does not exist
            raise RedraftError(503, "directory_unavailable", f"cannot look the redraft up: {exc}") from exc
        if where is None or where["doc"] != doc:
            raise _unknown(doc, redraft_id)
        return where

    # --- bookkeeping -----------------------------------------------------------------------------------

    def get(self, doc: str, redraft_id: str) -> Redraft:
        redraft = self.redrafts.get(redraft_id)
        if redraft is None or redraft.doc != doc:
            raise _unknown(doc, redraft_id)
        return redraft

    def _remember(self, redraft: Redraft) -> None:
        self.redrafts[redraft.id] = redraft
        finished = [r.id for r in self.redrafts.values() if r.status in FINAL]
        for redraft_id in finished[: max(0, len(finished) - KEEP_RECORDS)]:
            del self.redrafts[redraft_id]

    def _peer(self, room: Room) -> AiPeer:
        peer = self.peers.get(room.name)
        if peer is None or peer.room is not room:
            peer = self.peers[room.name] = AiPeer(room, self.config.redraft_preview_hz)
        return peer

    def _show(self, redraft: Redraft) -> None:
        """Publishes the redraft's state in its room's awareness (a finished one leaves after a while), and
        its status to the other replicas."""
        self.directory.record(redraft, self.to_json(redraft))
        room = self.rooms.rooms.get(redraft.doc)
        if room is None or room.is_closed or redraft.is_restore:  # editors draw redrafts; a restore is no preview
            return
        peer = self._peer(room)
        peer.show(redraft)
        if redraft.status in FINAL:
            asyncio.get_running_loop().call_later(SHOW_FINISHED_S, self._hide, peer, redraft)

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
        for peer in self.peers.values():
            peer.close()
        for timer in self._republish.values():
            timer.cancel()
        await self.directory.close()
        await self.backend.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


COMMANDS = {
    "accept": RedraftService.accept,
    "undo": RedraftService.undo,
    "redo": RedraftService.redo,
    "cancel": RedraftService.cancel,
}


def overall_progress(shown: dict, progress: dict) -> dict:
    """The redraft's progress over all its canvases, never lower than what was shown: the engine's own
    (canvases done x steps per canvas + this step, over the estimate for all), or the canvas's step; for a
    streaming model, tokens written over max_tokens, with `streaming: true`."""
    overall = progress.get("progress") or {"step": progress["step"], "max_steps": progress["max_steps"]}
    step, max_steps = int(overall["step"]), int(overall["max_steps"])
    max_steps = max(max_steps, shown["max_steps"])
    merged = {"step": min(max(step, shown["step"]), max_steps), "max_steps": max_steps}
    if progress.get("streaming") is True:  # a left-to-right remote model: the editor counts tokens, not steps
        merged["streaming"] = True
    return merged


def _unknown(doc: str, redraft_id: str) -> RedraftError:
    return RedraftError(404, "unknown_redraft", f"no redraft {redraft_id!r} in document {doc!r}")


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
