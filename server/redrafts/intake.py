"""A redraft request made into a redraft: its options and task checked, its range resolved in one state of
the document and pinned, the request-time fork kept, and the engine job submitted with its spec."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from jobs.tasks import instruction_for, task_for

from ..updates import utf16_length
from . import merge
from .backends import EngineBackend, EngineRejected, EngineUnavailable
from .record import Redraft
from .request import RedraftError, check_kind, parse_options, place


@dataclass(frozen=True)
class Options:
    """What the request's body asks for, checked (request.parse_options); kind and task may still be open."""

    kind: str | None
    task: str | None
    mode: str
    instruction: str
    requester: dict
    steps: int | None
    seed: int | None


def read_options(backend: EngineBackend, body: dict, verified_name: str | None) -> Options:
    """The body's options, refused before the request counts against the rate limits when they can be.
    `verified_name`: the token's signed name, which the history shows as the requester instead of the
    name the body claims (that one is shown unverified)."""
    kind, task, mode, instruction, requester, steps, seed = parse_options(body)
    if kind is not None:  # known already: refused before it counts against the rate limits
        task = _task(backend, kind, task, instruction)
    if verified_name is not None:
        requester = {**requester, "name": verified_name, "verified": True}
    else:
        requester = {**requester, "verified": False}
    return Options(kind, task, mode, instruction, requester, steps, seed)


def _task(backend: EngineBackend, kind: str, task: str | None, instruction: str) -> str:
    """The request's task (named, or what an older client's kind and instruction meant), refused when the
    engine's model does not declare it: in words that say what it does instead."""
    task = task or task_for(kind, instruction)
    refusal = backend.model().refusal(task)
    if refusal is not None:
        raise RedraftError(400, "task_not_supported", refusal)
    return task


async def open_redraft(backend: EngineBackend, config, room, options: Options, body: dict, user_key: str) -> Redraft:
    """The redraft of the range the body names, in the room's document as it is now (not yet submitted)."""
    if room.is_blank:
        raise RedraftError(404, "unknown_doc", f"document {room.name!r} does not exist (it has never been edited)")
    # One state of the document for everything below: the live one moves on while a thread maps it.
    snapshot, value = room.snapshot()
    start, end, anchors = await asyncio.to_thread(place, snapshot, value, body)
    kind, task = options.kind, options.task
    if kind is None:  # an older client's request that names neither: the range says which
        kind = "rewrite" if end > start else "fill"
        task = _task(backend, kind, task, options.instruction)
    # The prompt's instruction: the task's own, or the person's for `instruct` (also what history shows).
    instruction = instruction_for(task, options.instruction)
    check_kind(kind, value[start:end])
    length = utf16_length(value[start:end])
    if length > config.redraft_max_chars:
        raise RedraftError(
            413, "range_too_long", f"the range is {length} characters; at most {config.redraft_max_chars}"
        )
    return Redraft(
        id=secrets.token_urlsafe(9),
        doc=room.name,
        kind=kind,
        task=task,
        mode=options.mode,
        instruction=instruction,
        requester=options.requester,
        user_key=user_key,
        anchors=anchors,
        fork=merge.Fork(snapshot, start, end, value[start:end], value),
        steps=options.steps,
        seed=options.seed if options.seed is not None else secrets.randbits(31),
        model=backend.status().get("model"),
    )


async def submit(backend: EngineBackend, config, redraft: Redraft) -> None:
    """Hands the redraft's spec (passage, instruction, the text around it) to the engine."""
    fork, kind = redraft.fork, redraft.kind
    start, end, value = fork.start, fork.end, fork.value
    context = config.redraft_context_chars
    spec = {
        "id": redraft.id,
        "kind": kind,
        "task": redraft.task,
        "passage": fork.passage,
        "instruction": redraft.instruction,
        "before": value[max(0, start - context) : start],
        "after": value[end : end + context] if kind != "continue" else "",
        "steps": redraft.steps,
        "seed": redraft.seed,
    }
    try:
        redraft.job = await backend.submit(spec)
    except EngineUnavailable as exc:
        raise RedraftError(503, "engine_unavailable", str(exc)) from exc
    except EngineRejected as exc:
        raise RedraftError(400, "engine_rejected", str(exc)) from exc
