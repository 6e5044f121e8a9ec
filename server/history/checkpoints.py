"""Checkpoints: the document's state at some seq, so rebuilding a version replays a bounded stretch of history.

Log compaction keeps only the newest snapshot; history keeps every entry, and a checkpoint lets a rebuild
start near the version asked for instead of at seq 1. A checkpoint is made from the history itself (the last
checkpoint plus the entries since), never from the live replica, which may already hold updates whose
entries come after the seq the checkpoint would be stored under.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pycrdt import Doc, Text

from ..stores.base import Store
from ..yrs_apply import apply_all_unobserved, apply_unobserved, stretches

# A new checkpoint once the entries since the last one outgrow max(this, that checkpoint's size): the work of
# a rebuild stays within about twice the document's size, and checkpoints take at most about as much room
# as the history they cover.
CHECKPOINT_MIN_BYTES = 64 << 10
LAST_SEQ = 1 << 62
TEXT_NAME = "content"


def replay(state: bytes | None, updates: list[bytes]) -> Doc:
    """A fresh replica with `state` and then `updates` applied in order (pure: safe in a worker thread).

    It runs in worker threads, and gives the GIL away after every stretch (yrs_apply): a thread busy with Python
    lets go of it only when the switch interval (5 ms) runs out, so while a checkpoint replayed 2,000
    keystrokes the event loop and the store's writer thread each waited that long for it, again and again
    (issue 21: traced, appends of 8-10 ms during every checkpoint of a busy room)."""
    doc = Doc()
    doc.get(TEXT_NAME, type=Text)
    if state is not None:
        apply_unobserved(doc, state)
    # Nothing observes a replay: 2,000 keystrokes 18 -> 6.5 ms without pycrdt's transactions, and one yrs
    # commit per stretch merges each typist's run once, not once per update (yrs_apply).
    for stretch in stretches(updates):
        apply_all_unobserved(doc, stretch)
        time.sleep(0)  # releases the GIL: a thread waiting for it takes it now
    return doc


def replay_state(state: bytes | None, updates: list[bytes]) -> bytes:
    return replay(state, updates).get_update()


@dataclass(frozen=True)
class CheckpointCheck:
    seq: int | None  # the checkpoint made, if one was due
    since_bytes: int  # update bytes recorded after the newest checkpoint, this check done
    due_bytes: int  # the next one is due once since_bytes exceeds this: max(min_bytes, newest checkpoint's size)


async def checkpoint_if_due(store: Store, doc: str, min_bytes: int = CHECKPOINT_MIN_BYTES) -> CheckpointCheck:
    """Stores a checkpoint at the newest entry when the entries since the last one are due."""
    latest = await store.checkpoint(doc, LAST_SEQ)
    after, state = latest if latest is not None else (0, None)
    entries = await store.history_updates(doc, after=after)
    since_bytes = sum(len(update) for _, update in entries)
    due_bytes = max(min_bytes, len(state or b""))
    if since_bytes <= due_bytes:
        return CheckpointCheck(None, since_bytes, due_bytes)
    # Replaying a 64 KiB stretch onto an 8 MB state takes tens of ms: off the event loop.
    new_state = await asyncio.to_thread(replay_state, state, [update for _, update in entries])
    await store.put_checkpoint(doc, entries[-1][0], new_state)
    return CheckpointCheck(entries[-1][0], 0, max(min_bytes, len(new_state)))
