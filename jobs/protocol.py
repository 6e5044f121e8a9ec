"""The Redis job protocol between the servers (`--engine redis`) and `redraft worker`s, written once.

Torch-free and redis-free: the server's Redis backend and the worker both import it, and neither repeats a key,
a field or an event of it. Several server replicas share one or more workers through Redis's own primitives:

- jobs: stream `{prefix}:engine:jobs`, consumer group `workers`; an entry (`job_entry`) holds `id`, `spec`
  (JSON of jobs.spec.RedraftSpec), `reply` (the reply stream's key) and `submitted_at` (Unix seconds).
- replies: stream `{prefix}:engine:job:{id}`, MAXLEN-trimmed and expiring; an entry (`reply_entry`) holds
  `event` (EVENTS), `attempt` (the job's delivery count) and `data` (JSON: a progress dict, `{"delivery",
  "worker"}`, an outcome dict, or `{"detail", "rejected"}`).
- cancel: key `{prefix}:engine:cancel:{id}` (any value, with a TTL), polled between steps.
- liveness: key `{prefix}:engine:worker:{name}` (JSON status, with a TTL its heartbeat refreshes), its name
  in the set `{prefix}:engine:workers` so that a server finds workers without scanning the keyspace.

Also the dicts a job yields whatever runs it (the in-process engine, a remote one, a worker): a progress
snapshot, and the outcome.
"""

from __future__ import annotations

import json

GROUP = "workers"  # the jobs stream's consumer group

EVENT_PROGRESS = "progress"  # data: a progress snapshot
EVENT_RETRY = "retry"  # data: {"delivery", "worker"}: another worker took the job over and runs it again
EVENT_OUTCOME = "outcome"  # data: an outcome dict (status done or cancelled); the last event
EVENT_FAILED = "failed"  # data: {"detail", "rejected"?}; the last event
EVENTS = (EVENT_PROGRESS, EVENT_RETRY, EVENT_OUTCOME, EVENT_FAILED)


# --- keys ----------------------------------------------------------------------------------------------------


def jobs_key(prefix: str) -> str:
    """The stream every server adds its jobs to and every worker reads them from."""
    return f"{prefix}:engine:jobs"


def reply_key(prefix: str, job_id: str) -> str:
    """One job's events, from the worker that runs it to the server that waits for it."""
    return f"{prefix}:engine:job:{job_id}"


def cancel_key(prefix: str, job_id: str) -> str:
    return f"{prefix}:engine:cancel:{job_id}"


def liveness_key(prefix: str, name: str) -> str:
    """A worker's JSON status, kept alive by its heartbeat (read by servers and the health check)."""
    return f"{prefix}:engine:worker:{name}"


def workers_key(prefix: str) -> str:
    """The set of worker names: finding workers without scanning the keyspace."""
    return f"{prefix}:engine:workers"


# --- entries -------------------------------------------------------------------------------------------------


def job_entry(job_id: str, spec_json: str, reply: str, submitted_at: float) -> dict[str, str]:
    """A jobs-stream entry, as the server adds it."""
    return {"id": job_id, "spec": spec_json, "reply": reply, "submitted_at": f"{submitted_at:.3f}"}


def reply_entry(event: str, attempt: int, data: dict) -> dict:
    """A reply-stream entry, as the worker adds it."""
    return {"event": event, "attempt": attempt, "data": json.dumps(data)}


def read_reply(fields: dict[bytes, bytes]) -> tuple[str, int, dict]:
    """(event, attempt, data) of a reply-stream entry as redis-py returns it; raises KeyError or ValueError
    for a malformed one."""
    return fields[b"event"].decode(), int(fields.get(b"attempt", b"1")), json.loads(fields[b"data"])


# --- what a job yields ---------------------------------------------------------------------------------------


def progress_snapshot(step: int, max_steps: int, canvas_index: int, text: str, tokens: list, stopped: bool,
                      finished: bool, **more) -> dict:
    """A progress dict: the canvas's step of its steps, the whole text so far, its pieces as [text,
    confidence], whether this step ended the canvas and whether the job is done. `more`: what an engine adds
    (engine/runtime/redrafts.py: num_canvases, progress, committed; a remote one: streaming)."""
    return {"step": step, "max_steps": max_steps, "canvas_index": canvas_index, "text": text, "tokens": tokens,
            "stopped": stopped, "finished": finished, **more}


def retry_progress(attempt: int, worker: str | None) -> dict:
    """What a job yields when another worker took it over from one that died and runs it from the beginning:
    a progress with nothing written yet, so that a consumer showing the latest progress resets its preview."""
    return progress_snapshot(0, 0, 0, "", [], False, False, retry=True, attempt=attempt, worker=worker)


def job_outcome(status: str, text: str, steps: list[int], tokens: int, timings: dict, **more) -> dict:
    """An outcome dict: status done or cancelled, the final text, the steps of each canvas, the tokens
    written, engine-side timings. `more`: complete, finish_reason, prompt_tokens where the engine knows them."""
    return {"status": status, "text": text, "steps": steps, "tokens": tokens, "timings": timings, **more}


def cancelled_outcome() -> dict:
    """The outcome of a job cancelled before it ran (or given up by everyone): nothing written."""
    return job_outcome("cancelled", "", [], 0, {})


def describe(exc: BaseException) -> str:
    """An engine error in words a person reads in the editor."""
    text = str(exc) or type(exc).__name__
    if "out of memory" in text.lower():
        return f"the GPU ran out of memory ({text.splitlines()[0]}); try fewer steps or a shorter passage"
    return text
