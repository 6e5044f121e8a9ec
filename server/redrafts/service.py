"""The redraft lifecycle: request, engine, live preview, merge, suggest/accept, undo, cancel.

1. Request: the range is resolved in the live document, pinned with relative positions, and a fork (the
   whole document as it is now) is kept with the passage.
2. Engine: the spec (passage, instruction, the text around it) goes to the backend; every snapshot updates
   the redraft, which the room's AI peer publishes (throttled) in awareness.
3. Merge (`apply` at once, `suggest` on accept): `merge.merge_update` turns the request-time passage into
   the result on the fork; its update is applied to the live replica inside a transaction with origin
   `redraft:{id}`, then stored and broadcast like any client's change: one change for everyone.
4. Undo: an UndoManager scoped to that origin, made just before the merge, reverts only the redraft.

Redrafts live in this server process (the one that took the request); with Redis, other replicas read their
status and forward accept/undo/cancel here (directory.py). A document's live jobs are cancelled when its
room is unloaded; suggestions wait (they merge into whatever replica is loaded then).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import time
from collections import OrderedDict, defaultdict

from pycrdt import Assoc, UndoManager

from ..ratelimit import TokenBucket
from ..room import Room
from ..updates import decode_state_vector
from . import merge
from .ai_peer import AiPeer
from .backends import EngineBackend, EngineFailed, EngineRejected, EngineUnavailable
from .directory import Directory, LocalDirectory, OwnerUnreachable
from .positions import Layout
from .record import (
    CANCELLED,
    CONFLICT,
    DONE,
    FAILED,
    FINAL,
    KINDS,
    LIVE,
    MODES,
    QUEUED,
    REJECTED,
    RUNNING,
    SUGGESTED,
    UNDONE,
    Redraft,
)

log = logging.getLogger(__name__)

SHOW_FINISHED_S = 8.0  # a finished redraft stays in awareness this long, so editors can flash it
KEEP_RECORDS = 256  # finished redrafts kept per process for GET (oldest dropped first)
UNDO_DEPTH = 16  # redrafts per document that can still be undone (each UndoManager observes the document)


class RedraftError(Exception):
    """A refusal with an HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: str, detail: str, retry_after_s: float | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after_s = status, code, detail, retry_after_s


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
        self._undo: dict[str, tuple[Room, UndoManager]] = {}  # id -> (room it merged into, its manager)
        self._undo_order: defaultdict[str, list[str]] = defaultdict(list)  # doc -> ids, oldest first
        self._watchers: dict[str, object] = {}  # doc -> text subscription while suggestions wait
        self._user_buckets: dict[str, TokenBucket] = {}
        self._doc_buckets: dict[str, TokenBucket] = {}
        rooms.unload_listeners.append(self._on_unload)
        metrics.redraft_queue.set_function(self.queue_length)

    async def start(self) -> None:
        await self.backend.start()
        await self.directory.start(self.run_command)

    # --- request ---------------------------------------------------------------------------------------

    async def create(self, doc: str, body: dict, user_key: str) -> Redraft:
        kind, mode, instruction, requester, steps, seed = _parse_options(body)
        self._admit(doc, user_key)
        room = await self.rooms.acquire(doc)
        try:
            if room.doc.get_state() == b"\x00":
                raise RedraftError(404, "unknown_doc", f"document {doc!r} does not exist (it has never been edited)")
            # One state of the document for everything below: the live one moves on while a thread maps it.
            snapshot, value = room.doc.get_update(), str(room.text)
            start, end, anchors = await asyncio.to_thread(_place, snapshot, value, body)
            if kind is None:
                kind = "rewrite" if end > start else "fill"
            _check_kind(kind, value[start:end])
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
                mode=mode,
                instruction=instruction,
                requester=requester,
                user_key=user_key,
                anchors=anchors,
                fork=fork,
                steps=steps,
                seed=seed if seed is not None else secrets.randbits(31),
            )
            context = self.config.redraft_context_chars
            spec = {
                "id": redraft.id,
                "kind": kind,
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

    def _admit(self, doc: str, user_key: str) -> None:
        config = self.config
        live = self.queue_length()
        if live >= config.redraft_queue_max:
            self.metrics.refused("redraft_queue_full")
            raise RedraftError(
                429, "queue_full", f"{live} redrafts are waiting or running; try again shortly", retry_after_s=2.0
            )
        for key, buckets, per_min, burst, what in (
            (user_key, self._user_buckets, config.redraft_user_per_min, config.redraft_user_burst, "you"),
            (doc, self._doc_buckets, config.redraft_doc_per_min, config.redraft_doc_burst, "this document"),
        ):
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = TokenBucket(per_min / 60.0, burst)
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
        for name in ("queue_s", "prefill_s", "denoise_s"):
            redraft.timings[name.removesuffix("_s")] = outcome["timings"].get(name, 0.0)
        redraft.engine_steps, redraft.engine_tokens = outcome["steps"], outcome["tokens"]
        self.metrics.redraft_generated(outcome["steps"], outcome["tokens"], outcome["timings"].get("denoise_s", 0.0))
        text = _frame(redraft.kind, redraft.original, outcome["text"])
        if redraft.kind == "rewrite" and not text.strip():
            return self._end(redraft, FAILED, "the model returned no text; the passage was left as it was")
        redraft.text = text
        if redraft.mode == "suggest":
            redraft.status = SUGGESTED
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
        if progress.get("retry"):  # a worker died: the job starts over on another one
            redraft.step, redraft.preview_text, redraft.tokens = 0, "", []
        else:
            redraft.step, redraft.max_steps = progress["step"], progress["max_steps"]
            redraft.preview_text, redraft.tokens = progress["text"], progress["tokens"]
        self._show(redraft)

    def _merge(self, redraft: Redraft) -> None:
        room = self.rooms.rooms.get(redraft.doc)
        if room is None or room.is_closed:
            # Only a suggestion can outlive its room (accept re-acquires it first).
            return self._end(redraft, FAILED, "the document was closed before the redraft could land")
        started = time.perf_counter()
        clients = set(decode_state_vector(room.doc.get_state()))
        update = merge.merge_update(redraft.fork, redraft.text, clients)
        if room.size_bytes + len(update) > room.max_doc_bytes:
            return self._end(redraft, FAILED, f"the document would exceed {room.max_doc_bytes} bytes")
        manager = UndoManager(scopes=[room.text], capture_timeout_millis=0)
        manager.include_origin(redraft.origin)

        def apply() -> None:
            with room.doc.transaction(origin=redraft.origin):
                room.doc.apply_update(update)

        room.local_change(apply)
        self._keep_undo(redraft, room, manager)
        redraft.timings["merge"] = time.perf_counter() - started
        self._end(redraft, DONE)

    def _end(self, redraft: Redraft, status: str, error: str | None = None) -> None:
        redraft.status = status
        if error is not None and status in (FAILED, CANCELLED):
            redraft.error = error
        self._finish_timing(redraft)
        self.metrics.redraft_ended(status)
        self._show(redraft)
        self._unwatch_if_idle(redraft.doc)

    def _finish_timing(self, redraft: Redraft) -> None:
        redraft.timings["total"] = time.perf_counter() - redraft.started

    # --- suggestions: accept, conflicts ----------------------------------------------------------------

    async def accept(self, doc: str, redraft_id: str) -> Redraft:
        redraft = self.get(doc, redraft_id)
        if redraft.status == CONFLICT:
            raise RedraftError(409, "conflict", _conflict_detail())
        if redraft.status != SUGGESTED:
            raise RedraftError(409, "not_suggested", f"only a suggestion can be accepted; this one is {redraft.status}")
        room = await self.rooms.acquire(doc)
        try:
            if self._conflicts(room, redraft):
                redraft.status = CONFLICT
                self._show(redraft)
                raise RedraftError(409, "conflict", _conflict_detail())
            self._merge(redraft)
        finally:
            self.rooms.release(room)
        return redraft

    def _conflicts(self, room: Room, redraft: Redraft) -> bool:
        """Whether the passage changed since the request: the suggestion's diff no longer shows the truth."""
        return merge.passage_changed(redraft.fork, str(room.text))

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
            if redraft.doc == doc and redraft.status == SUGGESTED and self._conflicts(room, redraft):
                redraft.status = CONFLICT
                self._show(redraft)
        self._unwatch_if_idle(doc)

    def _unwatch_if_idle(self, doc: str) -> None:
        if doc in self._watchers and not any(
            r.doc == doc and r.status == SUGGESTED for r in self.redrafts.values()
        ):
            room = self.rooms.rooms.get(doc)
            subscription = self._watchers.pop(doc)
            if room is not None:
                room.text.unobserve(subscription)

    # --- undo, cancel, reject --------------------------------------------------------------------------

    async def undo(self, doc: str, redraft_id: str) -> Redraft:
        redraft = self.get(doc, redraft_id)
        if redraft.status != DONE:
            raise RedraftError(409, "not_applied", f"only an applied redraft can be undone; this one is {redraft.status}")
        kept = self._undo.get(redraft_id)
        room = self.rooms.rooms.get(doc)
        if kept is None or kept[0] is not room:
            raise RedraftError(
                409, "undo_unavailable", "this redraft can no longer be undone (too old, or the document was reopened)"
            )
        manager = kept[1]
        room.local_change(manager.undo)
        self._drop_undo(redraft_id)
        self._end(redraft, UNDONE)
        return redraft

    async def cancel(self, doc: str, redraft_id: str) -> Redraft:
        """Cancels a queued or running redraft, rejects a suggestion, dismisses a conflict."""
        redraft = self.get(doc, redraft_id)
        if redraft.status in LIVE:
            redraft.status = CANCELLED
            redraft.error = "cancelled by a user"
            if redraft.job is not None:
                redraft.job.cancel()
            self._show(redraft)
        elif redraft.status in (SUGGESTED, CONFLICT):
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
        for redraft_id in self._undo_order.pop(doc, []):
            self._undo.pop(redraft_id, None)

    # --- any replica: status and commands ---------------------------------------------------------------

    async def view(self, doc: str, redraft_id: str) -> dict:
        """The redraft's HTTP resource, from this process or, when another replica holds it, its last view."""
        if redraft_id in self.redrafts:
            return self.get(doc, redraft_id).to_json()
        return (await self._elsewhere(doc, redraft_id))["view"]

    async def command(self, doc: str, redraft_id: str, action: str) -> dict:
        """accept, undo or cancel, run here or by the replica that holds the redraft."""
        if redraft_id in self.redrafts:
            return (await COMMANDS[action](self, doc, redraft_id)).to_json()
        where = await self._elsewhere(doc, redraft_id)
        try:
            status, body = await self.directory.forward(where["owner"], doc, redraft_id, action)
        except OwnerUnreachable as exc:
            raise RedraftError(503, "owner_unreachable", f"{exc}; the redraft cannot be changed any more") from exc
        if status != 200:
            raise RedraftError(status, body.get("error", "error"), body.get("detail", ""), body.get("retry_after_s"))
        return body

    async def run_command(self, doc: str, redraft_id: str, action: str) -> tuple[int, dict]:
        """A command another replica forwarded: answered as this process's HTTP API would."""
        if action not in COMMANDS:
            return 400, {"error": "bad_request", "detail": f"unknown redraft action {action!r}"}
        try:
            return 200, (await COMMANDS[action](self, doc, redraft_id)).to_json()
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

    def _keep_undo(self, redraft: Redraft, room: Room, manager: UndoManager) -> None:
        self._undo[redraft.id] = (room, manager)
        order = self._undo_order[redraft.doc]
        order.append(redraft.id)
        while len(order) > UNDO_DEPTH:
            self._drop_undo(order[0])

    def _drop_undo(self, redraft_id: str) -> None:
        kept = self._undo.pop(redraft_id, None)
        if kept is not None:
            self._undo_order[kept[0].name].remove(redraft_id)

    def _peer(self, room: Room) -> AiPeer:
        peer = self.peers.get(room.name)
        if peer is None or peer.room is not room:
            peer = self.peers[room.name] = AiPeer(room, self.config.redraft_preview_hz)
        return peer

    def _show(self, redraft: Redraft) -> None:
        """Publishes the redraft's state in its room's awareness (a finished one leaves after a while), and
        its status to the other replicas."""
        self.directory.record(redraft)
        room = self.rooms.rooms.get(redraft.doc)
        if room is None or room.is_closed:
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
        await self.directory.close()
        await self.backend.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


COMMANDS = {"accept": RedraftService.accept, "undo": RedraftService.undo, "cancel": RedraftService.cancel}


def _unknown(doc: str, redraft_id: str) -> RedraftError:
    return RedraftError(404, "unknown_redraft", f"no redraft {redraft_id!r} in document {doc!r}")


# --- request parsing ---------------------------------------------------------------------------------------


def _parse_options(body: dict):
    if not isinstance(body, dict):
        raise RedraftError(400, "bad_request", "the body must be a JSON object")
    kind = body.get("kind")
    if kind is not None and kind not in KINDS:
        raise RedraftError(400, "bad_request", f"kind must be one of {', '.join(KINDS)}")
    mode = body.get("mode", "apply")
    if mode not in MODES:
        raise RedraftError(400, "bad_request", f"mode must be one of {', '.join(MODES)}")
    instruction = body.get("instruction") or ""
    if not isinstance(instruction, str) or len(instruction) > 2000:
        raise RedraftError(400, "bad_request", "instruction must be text of at most 2000 characters")
    requester = body.get("requester") or {}
    if not isinstance(requester, dict):
        raise RedraftError(400, "bad_request", "requester must be an object with name and color")
    requester = {
        "name": str(requester.get("name") or "Someone")[:64],
        "color": str(requester.get("color") or "#64748b")[:32],
    }
    steps, seed = body.get("steps"), body.get("seed")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 256):
        raise RedraftError(400, "bad_request", "steps must be an integer from 1 to 256")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise RedraftError(400, "bad_request", "seed must be an integer from 0 to 2**63-1")
    return kind, mode, instruction, requester, steps, seed


def _place(snapshot: bytes, value: str, body: dict) -> tuple[int, int, tuple[bytes, bytes]]:
    """The range a request names, and anchors pinned to the characters just outside it, which the redraft
    never deletes: they still frame the passage after the merge, and frame what others type at its edges.
    Runs on a worker thread, on a replica of the snapshot."""
    try:
        layout = Layout(snapshot, merge.TEXT_NAME, value)
    except merge.RangeError as exc:
        raise RedraftError(400, "bad_range", str(exc)) from exc
    start, end = _resolve_range(layout, value, body)
    return start, end, (layout.pin(start, Assoc.BEFORE), layout.pin(end, Assoc.AFTER))


def _resolve_range(layout: Layout, value: str, body: dict) -> tuple[int, int]:
    try:
        if "start" in body or "end" in body:
            start = layout.resolve(_b64decode(body.get("start"), "start"))
            end = layout.resolve(_b64decode(body.get("end", body.get("start")), "end"))
        elif "start_index" in body:
            start = merge.utf16_to_index(value, body["start_index"])
            end = merge.utf16_to_index(value, body.get("end_index", body["start_index"]))
        else:
            raise merge.RangeError("give the range as start/end (relative positions) or start_index/end_index")
    except merge.RangeError as exc:
        raise RedraftError(400, "bad_range", str(exc)) from exc
    if end < start:
        raise RedraftError(400, "bad_range", "the range is reversed: its end comes before its start")
    return start, end


def _check_kind(kind: str, passage: str) -> None:
    if kind == "rewrite" and not passage.strip():
        raise RedraftError(400, "bad_range", "a rewrite needs a passage: the range is empty or blank")
    if kind in ("fill", "continue") and passage:
        raise RedraftError(400, "bad_range", f"{kind} writes at a cursor: give an empty range")


def _b64decode(value, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise merge.RangeError(f"{name} must be a base64 relative position")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise merge.RangeError(f"{name} is not valid base64") from exc


def _frame(kind: str, passage: str, text: str) -> str:
    """A rewrite keeps the passage's own leading and trailing whitespace (the model's is dropped), so a
    redrafted paragraph does not glue itself to the next one."""
    if kind != "rewrite":
        return text
    body = passage.strip()
    if not body:
        return text
    lead = passage[: passage.index(body[0])]
    trail = passage[len(lead) + len(body) :]
    return lead + text.strip() + trail


def _conflict_detail() -> str:
    return (
        "the passage was edited after this suggestion was made, so its changes no longer match what is there; "
        "reject it and ask again"
    )
