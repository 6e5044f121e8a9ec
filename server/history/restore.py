"""Restoring a version: an ordinary CRDT edit that makes the document's text the version's text again.

It lands the way a redraft does (redrafts/merge.py): a fork of the document as it is when the restore is
asked for, the word-then-character diff from that text to the version's applied to the fork by a fresh
client, and the fork's update applied to the live document. So what others type meanwhile survives (their
inserts are concurrent with the restore's edits, which only delete the characters the fork held), and the
restore goes through the redraft machinery (a record of kind "restore"): undo and redo by text like any
redraft (`POST /api/docs/{doc}/redrafts/{id}/undo`), listed with the redrafts, and written in the history
as origin "restore" with the version it brings back.
"""

from __future__ import annotations

import asyncio
import json
import secrets

from ..redrafts import attribution, merge
from ..redrafts.record import DONE, RESTORE, RUNNING, Redraft
from ..redrafts.request import RedraftError
from ..room import TooLarge
from . import reading

MAX_BODY_BYTES = 4096


async def read_body(request) -> dict:
    """An optional JSON body `{"by": {"name", "color"}}`: who restores, for display (unverified)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise RedraftError(413, "body_too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise RedraftError(400, "bad_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RedraftError(400, "bad_request", 'the body must be a JSON object like {"by": {"name": "Ada"}}')
    return body


async def restore(services, doc: str, version_id: int, grant, body: dict, request) -> dict:
    """Restores version `version_id` of `doc`; the restore's redraft record as JSON (its `id` undoes it)."""
    await reading.find(services.store, doc, version_id, services.config.history_pause_s)
    target = await reading.text_at(services.store, doc, version_id)
    # The token's signed name is the only verified identity; a name in the body is shown, unverified.
    requester = attribution.person(body.get("by"), grant.name)
    rooms, service = services.rooms, services.redrafts
    room = await rooms.acquire(doc)
    try:
        # One state for the fork and the diff; the live document may move on while a thread diffs it.
        snapshot, value = room.snapshot()
        if value == target:
            raise RedraftError(409, "unchanged", f"the document's text is already that of version {version_id}")
        fork = merge.Fork(snapshot, 0, len(value), value, value)
        client_id = merge.fresh_client_id(room.writers())
        try:
            # A whole document's diff may take a while (difflib over its words): not on the event loop.
            update = await asyncio.to_thread(merge.merge_update, fork, target, client_id=client_id)
        except ValueError as exc:
            raise RedraftError(422, "unrestorable", f"version {version_id} cannot be restored: {exc}") from exc
        try:  # refused before it becomes a record: a restore too large for the document is a 413, not a failure
            room.require_fit(len(update), update)
        except TooLarge as exc:
            raise RedraftError(413, "doc_too_large", str(exc)) from None
        redraft = Redraft(
            id=secrets.token_urlsafe(9),
            doc=doc,
            kind=RESTORE,
            mode="apply",
            instruction="",
            requester=requester,
            user_key=(request.client or ("?",))[0],
            anchors=(b"", b""),  # a restore is never shown as a preview (service._show)
            fork=fork,
            steps=None,
            seed=0,
            status=RUNNING,
            text=target,
            restored=version_id,
        )
        service.land_restore(redraft, update, client_id)
    finally:
        rooms.release(room)
    if redraft.status != DONE:  # the room closed under it (a server shutting down)
        raise RedraftError(409, "not_restored", redraft.error or f"the restore ended {redraft.status}")
    return service.to_json(redraft)
