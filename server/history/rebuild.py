"""Rebuilding a version: the nearest checkpoint at or before it, then the entries up to it, replayed."""

from __future__ import annotations

import asyncio

from pycrdt import Text

from ..stores.base import Store
from .checkpoints import TEXT_NAME, replay, replay_state


def _text(state: bytes | None, updates: list[bytes]) -> str:
    return str(replay(state, updates).get(TEXT_NAME, type=Text))


async def _rebuild(store: Store, doc: str, seq: int, finish):
    found = await store.checkpoint(doc, seq)
    after, state = found if found is not None else (0, None)
    entries = await store.history(doc, after=after, upto=seq)
    # Off the event loop: a long stretch of entries takes a while to apply, and the room keeps serving.
    return await asyncio.to_thread(finish, state, [entry.update for entry in entries])


async def state_at(store: Store, doc: str, seq: int) -> bytes:
    """The document as it was once every entry up to `seq` was applied (a Yjs update of the whole state)."""
    return await _rebuild(store, doc, seq, replay_state)


async def text_at(store: Store, doc: str, seq: int) -> str:
    """The document's text (the Text "content") as it was at `seq`."""
    return await _rebuild(store, doc, seq, _text)


def unrecorded(replica_state: bytes, recorded_state: bytes) -> bytes | None:
    """What the replica holds that the history does not (pure, for a worker thread): an update, or None."""
    replica, recorded = replay(replica_state, []), replay(recorded_state, [])
    gap = replica.get_update(recorded.get_state())  # always carries the whole delete set: news or not?
    before = recorded.get_update()
    recorded.apply_update(gap)
    return gap if recorded.get_update() != before else None
