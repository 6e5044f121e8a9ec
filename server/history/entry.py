"""The history's data model: who made a change (Author), why (Origin), and one recorded entry (HistoryEntry).

Shared by the stores (which persist entries), the room (which records them) and the versions API (which
groups them). An entry's metadata travels as compact JSON (`to_meta`/`from_meta`) next to its update bytes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from typing import NamedTuple

AUTHOR_KINDS = ("person", "ai", "server")
ORIGIN_KINDS = ("typing", "redraft", "undo", "redo", "restore", "merged")
ANONYMOUS = "Anonymous"


@dataclass(frozen=True)
class Author:
    name: str  # <= 64 chars, already validated
    color: str | None = None  # strict "#rrggbb" or None
    verified: bool = False  # True: a signed token's name, or the server itself; False: an awareness name
    kind: str = "person"  # "person" | "ai" | "server"

    def to_json(self) -> dict:
        return {"name": self.name, "color": self.color, "verified": self.verified, "kind": self.kind}

    def to_stored(self) -> dict:
        """to_json without its defaults: every keystroke's entry carries its author (bench/history.py)."""
        raw = {"name": self.name}
        if self.color is not None:
            raw["color"] = self.color
        if self.verified:
            raw["verified"] = True
        if self.kind != "person":
            raw["kind"] = self.kind
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> "Author":
        return cls(raw["name"], raw.get("color"), bool(raw.get("verified", False)), raw.get("kind", "person"))


SERVER_AUTHOR = Author("Redraft", None, verified=True, kind="server")
ANONYMOUS_AUTHOR = Author(ANONYMOUS)


@dataclass(frozen=True)
class Origin:
    kind: str = "typing"  # "typing" | "redraft" | "undo" | "redo" | "restore" | "merged" (retention)
    redraft_id: str | None = None
    instruction: str | None = None
    model: str | None = None
    requester: Author | None = None  # who asked for the redraft / the restore
    version: int | None = None  # restore: the version id restored

    def to_json(self) -> dict:
        # Only what is set: a keystroke's entry is {"kind": "typing"}, not six nulls (per-entry bytes count).
        raw = {"kind": self.kind}
        for key in ("redraft_id", "instruction", "model", "version"):
            if getattr(self, key) is not None:
                raw[key] = getattr(self, key)
        if self.requester is not None:
            raw["requester"] = self.requester.to_stored()
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> "Origin":
        requester = raw.get("requester")
        return cls(
            raw.get("kind", "typing"),
            raw.get("redraft_id"),
            raw.get("instruction"),
            raw.get("model"),
            Author.from_json(requester) if requester else None,
            raw.get("version"),
        )


TYPING = Origin("typing")


class Change(NamedTuple):
    """What the write path carries with each update: who, why, and through which connection."""

    author: Author
    origin: Origin
    connection: str | None  # "{instance}:{peer id}" of a typing connection; None for the server's changes


SERVER_CHANGE = Change(SERVER_AUTHOR, TYPING, None)


@dataclass(frozen=True)
class HistoryEntry:
    seq: int  # assigned by the store, increasing per document (0 in a draft not yet appended)
    at: float  # unix seconds, the server's clock at the append
    update: bytes  # the Yjs update(s) of this entry, merged
    author: Author
    origin: Origin
    connection: str | None  # "{instance}:{peer id}" of a typing connection; None for the server's changes
    authors: tuple[Author, ...] = ()  # a "merged" entry: everyone whose edits it folds

    @classmethod
    def draft(cls, update: bytes, change: Change, at: float) -> "HistoryEntry":
        """An entry for `store.append(..., history=[...])`, which assigns its seq."""
        return cls(0, at, update, change.author, change.origin, change.connection)

    @property
    def change(self) -> Change:
        return Change(self.author, self.origin, self.connection)

    def with_seq(self, seq: int) -> "HistoryEntry":
        return replace(self, seq=seq)

    def to_meta(self) -> str:
        """Everything but seq and update, as compact JSON (the stores keep those two in their own columns):
        defaults left out, the time to the millisecond, no origin for typing."""
        # Only the time differs between one typist's entries: the rest is encoded once (on the store's writer
        # thread, holding the GIL the event loop needs: 10 µs an entry, up to 50 entries an append).
        return '{"at":' + float.__repr__(round(self.at, 3)) + "," + _meta_after_at(
            self.author, self.origin, self.connection, self.authors
        )

    @classmethod
    def from_meta(cls, seq: int, update: bytes, meta: str | bytes) -> "HistoryEntry":
        raw = json.loads(meta)
        return cls(
            seq,
            float(raw["at"]),
            update,
            Author.from_json(raw["author"]),
            Origin.from_json(raw.get("origin", {})),
            raw.get("connection"),
            tuple(Author.from_json(a) for a in raw.get("authors", ())),
        )


@functools.lru_cache(maxsize=4096)
def _meta_after_at(author: Author, origin: Origin, connection: str | None, authors: tuple[Author, ...]) -> str:
    """An entry's metadata JSON after its time: `"author":{...},...}`."""
    raw: dict = {"author": author.to_stored()}
    if origin != TYPING:
        raw["origin"] = origin.to_json()
    if connection is not None:
        raw["connection"] = connection
    if authors:
        raw["authors"] = [a.to_stored() for a in authors]
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"))[1:]
