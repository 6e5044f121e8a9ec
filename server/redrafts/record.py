"""One redraft from request to its end, and the two views of it: the HTTP resource and the awareness entry."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from .merge import Fork
from .revert import Change


@dataclass(frozen=True)
class UndoState:
    """Whether the redraft can be undone or redone now, and if not, why (a sentence a person can read)."""

    can_undo: bool = False
    can_redo: bool = False
    blocked: str | None = None


@dataclass(frozen=True)
class UndoCheck:
    """The last undo/redo answer for a redraft: good while its change and the text it was judged on stand."""

    change: Change  # the change it judged (a new merge, undo or redo makes a new one)
    seen: tuple[str, int, int]  # (status, text length, text hash) it judged
    state: UndoState


# queued -> running -> done (applied) | suggested -> done | rejected | conflict | expired
#                   -> failed | cancelled;   done <-> undone (undo, redo)
QUEUED, RUNNING, DONE, SUGGESTED, CONFLICT = "queued", "running", "done", "suggested", "conflict"
FAILED, CANCELLED, REJECTED, UNDONE, EXPIRED = "failed", "cancelled", "rejected", "undone", "expired"
LIVE = (QUEUED, RUNNING)  # in the engine
PENDING = (SUGGESTED, CONFLICT)  # waiting for a person
FINAL = (DONE, FAILED, CANCELLED, REJECTED, UNDONE, EXPIRED)
KINDS = ("rewrite", "fill", "continue")
RESTORE = "restore"  # not a kind a client may ask for: a version restored through the redraft machinery
MODES = ("apply", "suggest")


@dataclass
class Redraft:
    id: str
    doc: str
    kind: str
    mode: str
    instruction: str  # what the prompt carries: the task's own (jobs/tasks.py), or the person's for `instruct`
    requester: dict  # {"name", "color", "verified"} (attribution.person): verified only from a token's name
    user_key: str  # who asked, for rate limits: token subject or address
    anchors: tuple[bytes, bytes]  # Yjs relative positions of the range's start and end
    fork: Fork
    steps: int | None
    seed: int
    status: str = QUEUED
    step: int = 0
    max_steps: int = 0
    preview_text: str = ""
    tokens: list = field(default_factory=list)  # [[piece, confidence], ...]: earlier canvases as one piece, then this one
    progress: dict = field(default_factory=lambda: {"step": 0, "max_steps": 0})  # only goes up
    text: str | None = None  # the final result
    error: str | None = None
    engine_steps: list[int] = field(default_factory=list)
    engine_tokens: int = 0
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)  # seconds: queue, prefill, denoise, merge, first_snapshot, total
    job: object | None = None  # the engine job while live
    expires_at: float | None = None  # epoch seconds a suggestion expires at
    rejected_by: dict | None = None  # {"name", "color"} of whoever rejected the suggestion
    is_passage_edited: bool = False  # a pending suggestion's passage was edited since (it merges with the edits)
    change: Change | None = None  # the last landed merge, undo or redo, and how to take it back
    merge_client: int | None = None  # the Yjs client id its merge wrote with (names it as an author)
    undo_checked: UndoCheck | None = None  # the last answer about undo and redo, and what it was judged on
    model: str | None = None  # the engine's model that wrote it, for the history
    restored: int | None = None  # a restore (kind "restore"): the version id it brings back
    task: str = ""  # jobs/tasks.py's id (rewrite, shorten, fix, instruct, ...); "" for a restore

    @property
    def is_restore(self) -> bool:
        return self.kind == RESTORE

    @property
    def origin(self) -> str:
        return f"{RESTORE if self.is_restore else 'redraft'}:{self.id}"

    @property
    def original(self) -> str:
        return self.fork.passage

    def to_json(self, undo: UndoState = UndoState()) -> dict:
        """The HTTP resource; `undo` is what the service found about undo and redo now."""
        return {
            "id": self.id,
            "doc": self.doc,
            "status": self.status,
            "kind": self.kind,
            "task": self.task,
            "mode": self.mode,
            "instruction": self.instruction,
            "requester": self.requester,
            "original": self.original,
            "text": self.text,
            "preview": self.preview_text if self.status in LIVE else None,
            "step": self.step,
            "max_steps": self.max_steps,
            "steps": self.engine_steps,
            "tokens": self.engine_tokens,
            "error": self.error,
            "created": self.created,
            "created_at": self.created,
            "expires_at": self.expires_at,
            "rejected_by": self.rejected_by,
            "passage_edited": self.is_passage_edited,
            "model": self.model,
            "restored": self.restored,
            "progress": self.progress,
            "can_undo": undo.can_undo,
            "can_redo": undo.can_redo,
            "undo_blocked": undo.blocked,
            "timings": {name: round(value * 1000, 3) for name, value in self.timings.items()},  # ms
        }

    def to_awareness(self) -> dict:
        """The entry in the AI peer's awareness state that every collaborator's editor draws."""
        return {
            "id": self.id,
            "requester": self.requester,
            "kind": self.kind,
            "mode": self.mode,
            "status": self.status,
            "anchors": {"start": _b64(self.anchors[0]), "end": _b64(self.anchors[1])},
            "step": self.step,
            "max_steps": self.max_steps,
            "progress": self.progress,
            "text": self.text if self.text is not None else self.preview_text,
            "tokens": self.tokens if self.status in LIVE else [],
            "original": self.original,
            "error": self.error,
            "created_at": self.created,
            "expires_at": self.expires_at,
            "rejected_by": self.rejected_by,
            "passage_edited": self.is_passage_edited,
        }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
