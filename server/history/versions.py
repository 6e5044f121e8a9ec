"""Versions people understand, grouped from the store's history entries, and the diff between two texts.

A person typing makes hundreds of entries a minute (one per flushed batch); a list of them would be noise. So
consecutive `typing` entries of one connection and one author, with no pause longer than `pause_s` between
them, are one version; every other entry (a redraft, an undo or redo, a restore, a retention-`merged` entry)
is a version of its own, because it is a thing someone may want to look at or take back on its own. A
version's id is the seq of its last entry: the document's state at that seq is the version's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..redrafts import merge
from .entry import Author, HistoryEntry, Origin

TYPING = "typing"


@dataclass(frozen=True)
class Version:
    id: int  # the seq of its last entry
    first_seq: int
    started_at: float
    ended_at: float
    author: Author
    authors: tuple[Author, ...]  # everyone whose edits it holds (a merged entry lists them; else the author)
    origin: Origin  # of its entries (one for all: only typing entries group)
    entries: int

    @property
    def kind(self) -> str:
        return self.origin.kind

    def to_json(self) -> dict:
        origin = self.origin
        redraft = None
        if origin.redraft_id is not None:  # a redraft, its undo or redo, or a restore made through that machinery
            redraft = {
                "id": origin.redraft_id,
                "instruction": origin.instruction,
                "model": origin.model,
                "requester": origin.requester.to_json() if origin.requester is not None else None,
            }
        return {
            "id": self.id,
            "first_seq": self.first_seq,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "kind": self.kind,
            "author": self.author.to_json(),
            "authors": [author.to_json() for author in self.authors],
            "redraft": redraft,
            "restored": origin.version,
            "entries": self.entries,
        }


def joins(earlier: HistoryEntry, later: HistoryEntry, pause_s: float) -> bool:
    """Whether entry `later` continues the version `earlier` belongs to: both typed, by one connection and
    one author (its name and whether that name is verified: a colour change is no new version), without a
    pause longer than pause_s."""
    return (
        earlier.origin.kind == TYPING
        and later.origin.kind == TYPING
        and earlier.connection is not None
        and earlier.connection == later.connection
        and _who(earlier.author) == _who(later.author)
        and later.at - earlier.at <= pause_s
    )


def _who(author: Author) -> tuple:
    return (author.name, author.verified, author.kind)


def _version(entries: list[HistoryEntry]) -> Version:
    """The version made of these entries, oldest first."""
    first, last = entries[0], entries[-1]
    authors = tuple(last.authors) if last.authors else (last.author,)
    return Version(
        id=last.seq,
        first_seq=first.seq,
        started_at=first.at,
        ended_at=last.at,
        author=last.author,
        authors=authors,
        origin=last.origin,
        entries=len(entries),
    )


def group(entries: Iterable[HistoryEntry], pause_s: float) -> list[Version]:
    """The versions of entries given oldest first, oldest first."""
    runs: list[list[HistoryEntry]] = []
    for entry in entries:
        if runs and joins(runs[-1][-1], entry, pause_s):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return [_version(run) for run in runs]


def group_newest_first(
    entries: Iterable[HistoryEntry], pause_s: float, above: HistoryEntry | None = None
) -> list[Version]:
    """The versions of entries given newest first, newest first. `above` is the entry just after the first
    one given (or None): when it continues that entry's version, the part of that version given is left out
    (it is not a version: the version goes on above)."""
    runs: list[list[HistoryEntry]] = []
    is_cut = False
    newer = above
    for entry in entries:
        if newer is not None and joins(entry, newer, pause_s):
            if not runs:
                is_cut = True
                runs.append([])
            runs[-1].append(entry)
        else:
            runs.append([entry])
        newer = entry
    return [_version(run[::-1]) for run in runs[1 if is_cut else 0 :]]


# --- diff --------------------------------------------------------------------------------------------------


def diff_ops(old: str, new: str) -> list[list[str]]:
    """[["=", text], ["-", text], ["+", text]] that turn `old` into `new`: the "=" and "-" runs spell old,
    the "=" and "+" runs spell new. Words first, then characters within short changed runs: the same diff a
    redraft lands with (merge.edits), so what the panel shows is what a restore would do."""
    ops: list[list[str]] = []
    at = 0
    for start, end, replacement in merge.edits(old, new):
        if start > at:
            ops.append(["=", old[at:start]])
        if end > start:
            ops.append(["-", old[start:end]])
        if replacement:
            ops.append(["+", replacement])
        at = end
    if at < len(old):
        ops.append(["=", old[at:]])
    return ops
