"""A redraft request as the HTTP API takes it: options, the range (relative positions or UTF-16 indices)
resolved and pinned, and the refusal that becomes a JSON error."""

from __future__ import annotations

import base64
import binascii

from pycrdt import Assoc

from jobs.spec import RequestError, check_steps
from jobs.tasks import ALL_TASKS, TASKS

from ..room import TEXT_NAME
from .positions import Layout, RangeError, utf16_to_index
from .record import KINDS, MODES


class RedraftError(Exception):
    """A refusal with an HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: str, detail: str, retry_after_s: float | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after_s = status, code, detail, retry_after_s


def parse_person(value) -> dict | None:
    """{"name", "color"} of whoever acts, for display (not an identity), or None."""
    if not isinstance(value, dict):
        return None
    return {"name": str(value.get("name") or "Someone")[:64], "color": str(value.get("color") or "#64748b")[:32]}


def parse_options(body: dict):
    """(kind, task, mode, instruction, requester, steps, seed): kind None when neither kind nor task names it
    (the range decides), task None when the body names none (the kind and instruction decide: task_for)."""
    if not isinstance(body, dict):
        raise RedraftError(400, "bad_request", "the body must be a JSON object")
    kind = body.get("kind")
    if kind is not None and kind not in KINDS:
        raise RedraftError(400, "bad_request", f"kind must be one of {', '.join(KINDS)}")
    task = body.get("task")
    if task is not None:
        # Not echoed back: a value that is no task may be anything, of any size.
        if not isinstance(task, str) or task not in TASKS:
            raise RedraftError(400, "bad_request", f"task must be one of {', '.join(ALL_TASKS)}")
        if kind is None:
            kind = TASKS[task][0]
        elif kind != TASKS[task][0]:
            raise RedraftError(400, "bad_request", f"task {task} is a {TASKS[task][0]}, not a {kind}")
    mode = body.get("mode", "apply")
    if mode not in MODES:
        raise RedraftError(400, "bad_request", f"mode must be one of {', '.join(MODES)}")
    instruction = body.get("instruction") or ""
    if not isinstance(instruction, str) or len(instruction) > 2000:
        raise RedraftError(400, "bad_request", "instruction must be text of at most 2000 characters")
    requester = body.get("requester") or {}
    if not isinstance(requester, dict):
        raise RedraftError(400, "bad_request", "requester must be an object with name and color")
    requester = {
        "name": str(requester.get("name") or "Someone")[:64],
        "color": str(requester.get("color") or "#64748b")[:32],
    }
    steps, seed = body.get("steps"), body.get("seed")
    if task == "instruct" and not instruction.strip():
        raise RedraftError(400, "bad_request", "the instruct task needs an instruction: say what to do")
    try:
        check_steps(steps)  # the job spec's own rule, in its words
    except RequestError as exc:
        raise RedraftError(400, "bad_request", str(exc)) from None
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise RedraftError(400, "bad_request", "seed must be an integer from 0 to 2**63-1")
    return kind, task, mode, instruction, requester, steps, seed


def place(snapshot: bytes, value: str, body: dict) -> tuple[int, int, tuple[bytes, bytes]]:
    """The range a request names, and anchors pinned to the characters just outside it, which the redraft
    never deletes: they still frame the passage after the merge, and frame what others type at its edges.
    Runs on a worker thread, on a replica of the snapshot."""
    try:
        layout = Layout(snapshot, TEXT_NAME, value)
    except RangeError as exc:
        raise RedraftError(400, "bad_range", str(exc)) from exc
    start, end = _resolve_range(layout, value, body)
    return start, end, (layout.pin(start, Assoc.BEFORE), layout.pin(end, Assoc.AFTER))


def _resolve_range(layout: Layout, value: str, body: dict) -> tuple[int, int]:
    try:
        if "start" in body or "end" in body:
            start = layout.resolve(_b64decode(body.get("start"), "start"))
            end = layout.resolve(_b64decode(body.get("end", body.get("start")), "end"))
        elif "start_index" in body:
            start = utf16_to_index(value, body["start_index"])
            end = utf16_to_index(value, body.get("end_index", body["start_index"]))
        else:
            raise RangeError("give the range as start/end (relative positions) or start_index/end_index")
    except RangeError as exc:
        raise RedraftError(400, "bad_range", str(exc)) from exc
    if end < start:
        raise RedraftError(400, "bad_range", "the range is reversed: its end comes before its start")
    return start, end


def check_kind(kind: str, passage: str) -> None:
    if kind == "rewrite" and not passage.strip():
        raise RedraftError(400, "bad_range", "a rewrite needs a passage: the range is empty or blank")
    if kind in ("fill", "continue") and passage:
        raise RedraftError(400, "bad_range", f"{kind} writes at a cursor: give an empty range")


def _b64decode(value, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise RangeError(f"{name} must be a base64 relative position")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RangeError(f"{name} is not valid base64") from exc
