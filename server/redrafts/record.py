"""One redraft from request to its end, and the two views of it: the HTTP resource and the awareness entry."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from .merge import Fork

# queued -> running -> done (applied) | suggested -> done | rejected | conflict
#                   -> failed | cancelled;   done -> undone
QUEUED, RUNNING, DONE, SUGGESTED, CONFLICT = "queued", "running", "done", "suggested", "conflict"
FAILED, CANCELLED, REJECTED, UNDONE = "failed", "cancelled", "rejected", "undone"
LIVE = (QUEUED, RUNNING)  # in the engine
FINAL = (DONE, FAILED, CANCELLED, REJECTED, UNDONE)
KINDS = ("rewrite", "fill", "continue")
MODES = ("apply", "suggest")


@dataclass
class Redraft:
    id: str
    doc: str
    kind: str
    mode: str
    instruction: str
    requester: dict  # {"name", "color"} for display; not an identity
    user_key: str  # who asked, for rate limits: token subject or address
    anchors: tuple[bytes, bytes]  # Yjs relative positions of the range's start and end
    fork: Fork
    steps: int | None
    seed: int
    status: str = QUEUED
    step: int = 0
    max_steps: int = 0
    preview_text: str = ""
    tokens: list = field(default_factory=list)  # [[piece, confidence], ...] of the current canvas
    text: str | None = None  # the final result
    error: str | None = None
    engine_steps: list[int] = field(default_factory=list)
    engine_tokens: int = 0
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)  # seconds: queue, prefill, denoise, merge, first_snapshot, total
    ended_at: float | None = None  # monotonic time it reached a status shown only briefly
    job: object | None = None  # the engine job while live

    @property
    def origin(self) -> str:
        return f"redraft:{self.id}"

    @property
    def original(self) -> str:
        return self.fork.passage

    def to_json(self) -> dict:
        """The HTTP resource."""
        return {
            "id": self.id,
            "doc": self.doc,
            "status": self.status,
            "kind": self.kind,
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
            "text": self.text if self.text is not None else self.preview_text,
            "tokens": self.tokens if self.status in LIVE else [],
            "original": self.original,
            "error": self.error,
        }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
