"""Retention: recent history kept whole, older history one version per hour, then one per day.

Outside the keep-all window, consecutive entries of the same hour (up to hourly_days old) or the same UTC day
(beyond) fold into one "merged" entry: their updates merged, everyone who made them listed, seq and time those
of the last one folded. A fold only ever takes a run of consecutive seqs, so every version that remains
rebuilds exactly (a state at seq s is every entry up to s). Checkpoints strictly inside a folded run name
versions that no longer exist and go with it, in the same atomic step.
"""

from __future__ import annotations

import asyncio

from ..stores.base import Store
from ..update_merge import merge_all
from .entry import HistoryEntry, Origin

DAY_S = 86400.0
HOUR_S = 3600.0
PAGE = 1000  # entries scanned at a time (metadata only; a run's updates are read when it folds)


def bucket_of(at: float, hourly_horizon: float) -> tuple[str, int]:
    if at < hourly_horizon:
        return ("day", int(at // DAY_S))
    return ("hour", int(at // HOUR_S))


def merged_entry(run: list[HistoryEntry], update: bytes) -> HistoryEntry:
    """One entry for a run of consecutive entries; `update` is theirs merged."""
    authors: list = []
    for entry in run:
        for author in entry.authors or (entry.author,):
            if author not in authors:
                authors.append(author)
    last = run[-1]
    return HistoryEntry(last.seq, last.at, update, last.author, Origin("merged"), None, tuple(authors))


async def fold_run(store: Store, doc: str, first: int, last: int) -> bool:
    """Folds the entries first..last (consecutive: nothing else lies between them); False when another
    instance folded some of them first (the store checks what it replaces against what was read)."""
    run = await store.history(doc, after=first - 1, upto=last)
    if len(run) < 2:
        return False  # another instance folded them meanwhile
    update = await asyncio.to_thread(merge_all, [entry.update for entry in run])
    merged = merged_entry(run, update)
    first, last = run[0].seq, run[-1].seq  # what was read: another instance may have folded some meanwhile
    dropped = []
    found = await store.checkpoint(doc, last - 1)
    while found is not None and found[0] >= first:
        dropped.append(found[0])
        found = await store.checkpoint(doc, found[0] - 1)
    return await store.fold_history(doc, run, merged, dropped)


async def apply_retention(store: Store, doc: str, now: float, keep_all_days: float, hourly_days: float) -> int:
    """Folds what the policy no longer keeps whole; returns the number of folds made. keep_all_days 0 keeps
    everything; hourly_days 0 keeps hourly versions for good."""
    if keep_all_days <= 0:
        return 0
    horizon = now - keep_all_days * DAY_S
    hourly_horizon = now - hourly_days * DAY_S if hourly_days > 0 else float("-inf")
    folds, after, run, run_bucket = 0, 0, [], None
    while True:
        page = await store.history(doc, after=after, limit=PAGE, with_updates=False)
        young = next((i for i, entry in enumerate(page) if entry.at >= horizon), None)
        for entry in page[:young]:
            bucket = bucket_of(entry.at, hourly_horizon)
            if bucket != run_bucket:
                folds += await _fold_if_several(store, doc, run)
                run, run_bucket = [], bucket
            run.append(entry)
        if young is not None or len(page) < PAGE:
            break
        after = page[-1].seq
    return folds + await _fold_if_several(store, doc, run)


async def _fold_if_several(store: Store, doc: str, run: list[HistoryEntry]) -> int:
    if len(run) < 2:
        return 0  # a single entry (or one already merged) stays as it is, origin and all
    return int(await fold_run(store, doc, run[0].seq, run[-1].seq))
