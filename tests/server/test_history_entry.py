"""A history entry's metadata (server/history/entry.py): compact JSON that reads back as the entry it was."""

from __future__ import annotations

import json

import pytest

from server.history.entry import ANONYMOUS_AUTHOR, SERVER_AUTHOR, TYPING, Author, HistoryEntry, Origin

ANN = Author("Ann Ødegård", "#aabbcc", verified=False)
REQUESTED = Origin("redraft", "r-1", "Make it \"shorter\"", "redraft-small", requester=ANN)
ENTRIES = [
    HistoryEntry(0, 1796605613.2354, b"u", ANN, TYPING, "inst:12"),
    HistoryEntry(3, 1796605613.0, b"u", ANONYMOUS_AUTHOR, TYPING, None),
    HistoryEntry(4, 0.001, b"u", SERVER_AUTHOR, REQUESTED, None),
    HistoryEntry(5, 1e9 + 0.5, b"u", ANN, Origin("restore", version=7, requester=ANN), None),
    HistoryEntry(6, 12.3456, b"u", ANN, Origin("merged"), None, authors=(ANN, SERVER_AUTHOR)),
]


def plain_meta(entry: HistoryEntry) -> str:
    """The metadata as one json.dumps of the whole dict writes it."""
    raw = {"at": round(entry.at, 3), "author": entry.author.to_stored()}
    if entry.origin != TYPING:
        raw["origin"] = entry.origin.to_json()
    if entry.connection is not None:
        raw["connection"] = entry.connection
    if entry.authors:
        raw["authors"] = [author.to_stored() for author in entry.authors]
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_metadata_is_what_one_json_dumps_writes_and_reads_back_as_the_entry(entry):
    for _ in range(2):  # the second time from the cache of everything but the time
        assert entry.to_meta() == plain_meta(entry)
    again = HistoryEntry.from_meta(entry.seq, entry.update, entry.to_meta())
    assert again == HistoryEntry(
        entry.seq, round(entry.at, 3), entry.update, entry.author, entry.origin, entry.connection, entry.authors
    )


def test_entries_of_one_typist_differ_in_their_time_only():
    first, second = (HistoryEntry(0, at, b"u", ANN, TYPING, "inst:1") for at in (10.0, 11.5))
    assert json.loads(first.to_meta())["at"] == 10.0 and json.loads(second.to_meta())["at"] == 11.5
