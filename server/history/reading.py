"""Reading versions out of a store: one page of them newest first, one by id, and texts to compare.

The store gives entries by seq; versions group them (versions.py). A page is read newest first in chunks
until the page's last version is known to be whole (the next older entry does not continue it), so a page
costs about its own entries, not the document's history.
"""

from __future__ import annotations

from ..redrafts.request import RedraftError
from . import rebuild
from .versions import Version, group_newest_first

CHUNK = 512  # entries read per store call while grouping a page


async def page(store, doc: str, limit: int, before: int | None, pause_s: float) -> tuple[list[Version], int | None]:
    """Up to `limit` versions that ended before seq `before` (all when None), newest first, and the `before`
    of the next page (None on the last). `before` may be any seq: a version it cuts is left out whole."""
    upto = None if before is None else before - 1
    above = None
    if before is not None:  # the entry at or just after `before`: does the page's first version go on there?
        found = await store.history(doc, after=before - 1, limit=1)
        above = found[0] if found else None
    entries: list = []
    while True:
        chunk = await store.history(doc, upto=upto, limit=CHUNK, newest_first=True)
        entries += chunk
        versions = group_newest_first(entries, pause_s, above)
        if len(chunk) < CHUNK or len(versions) > limit:  # the history's start, or one more version began
            break
        upto = chunk[-1].seq - 1
    shown = versions[:limit]
    # The next page ends before this one's last version began: every version there is whole.
    return shown, (shown[-1].first_seq if len(versions) > limit else None)


async def find(store, doc: str, version_id: int, pause_s: float) -> Version:
    """The version ending at seq `version_id`: 404 when there is none, 410 when retention folded it away.

    Any entry's seq names the document as it was then, so an id listed a moment ago still answers after its
    author typed on (the version it ended has grown since: this is its part up to that seq)."""
    found = await store.history(doc, after=version_id - 1, upto=version_id)
    if not found:
        later = await store.history(doc, after=version_id, limit=1)
        if later and later[0].origin.kind == "merged":
            raise RedraftError(
                410, "folded", f"version {version_id} of {doc!r} was folded into version {later[0].seq} by the "
                "retention policy (older history keeps one version per hour or day)"
            )
        raise RedraftError(404, "unknown_version", f"no version {version_id} in document {doc!r}")
    entries, upto = list(found), version_id - 1
    while True:
        chunk = await store.history(doc, upto=upto, limit=CHUNK, newest_first=True)
        entries += chunk
        versions = group_newest_first(entries, pause_s)
        if len(chunk) < CHUNK or len(versions) > 1:
            return versions[0]
        upto = chunk[-1].seq - 1


async def text_at(store, doc: str, version_id: int) -> str:
    """The document's text as of that seq: the nearest checkpoint, then the entries after it replayed."""
    return await rebuild.text_at(store, doc, version_id)


async def current_text(rooms, doc: str) -> str:
    """The live text: the loaded room's (ahead of the store by at most a write in flight), else loaded."""
    room = await rooms.acquire(doc)
    try:
        return room.read_text()
    finally:
        rooms.release(room)
