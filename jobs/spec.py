"""A redraft job as the server asks for it: one typed spec, checked once, whichever side reads it.

The editor's service, the OpenAI-compatible API, the in-process engine, the remote engine and the Redis worker
all read a spec through `RedraftSpec.from_dict`, so a field means the same and is refused with the same words
everywhere. Torch-free and redis-free: both sides of the job wall import it.

Besides the editor's kinds (rewrite, fill, continue: engine/text/prompts.py builds their prompt), two kinds serve
the OpenAI-compatible API: `chat` (messages through the chat template) and `complete` (raw text). Any kind may
set `max_tokens` (the output is cut there) and `stop` strings (the output is cut before the first one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jobs.tasks import TASKS, task_for

REQUEST_KINDS = ("rewrite", "fill", "continue")  # the editor's kinds, each with a prompt of its own
API_KINDS = ("chat", "complete")
SPEC_KINDS = (*REQUEST_KINDS, *API_KINDS)
CHAT_ROLES = ("system", "user", "assistant")
MAX_STEPS = 256  # denoising steps per canvas a request may ask for (the editor offers 12, 24 and 48)
MAX_STOPS = 4  # OpenAI's limit on `stop`
# A stop string is matched against the end of the growing answer at every token (OutputLimit.settled), at a
# cost that grows with its length squared: four of 100,000 characters took 11 ms a token on an 8 kB answer,
# the event loop's time, which every document on the server shares. 256 costs 0.35 ms for the four.
MAX_STOP_CHARS = 256


class RequestError(ValueError):
    """A request that cannot run (a bad spec, empty prompt, ids out of range, bad budget or seed): the caller's
    fault. The engine raises it (engine.errors) and the server's backends turn it into a refusal."""


@dataclass(frozen=True)
class RedraftSpec:
    """One redraft as the server asks for it."""

    id: str
    kind: str  # SPEC_KINDS: rewrite | fill | continue | chat | complete
    passage: str = ""
    instruction: str = ""
    before: str = ""
    after: str = ""
    steps: int | None = None  # denoising steps per canvas, 1 to MAX_STEPS; default: the checkpoint's
    seed: int = 0
    max_canvases: int | None = None
    messages: list | None = None  # chat: [{"role": CHAT_ROLES, "content": str}, ...]
    prompt: str = ""  # complete: raw text, no chat template
    max_tokens: int | None = None  # output cut at this many tokens; its canvases are reserved
    stop: list | None = None  # up to MAX_STOPS strings; the output ends before the first one
    # jobs/tasks.py's task of an editor's kind (rewrite, fill, continue); from_dict fills in an absent one
    task: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "RedraftSpec":
        """The spec a JSON object describes, checked field by field. Raises RequestError naming the field."""
        if not isinstance(data, dict):
            raise RequestError("a redraft spec is a JSON object")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        try:
            spec = cls(**known)
        except TypeError as exc:
            raise RequestError(f"bad redraft spec: {exc}") from exc
        if spec.kind not in SPEC_KINDS:
            raise RequestError(f"kind must be one of {', '.join(SPEC_KINDS)}, not {spec.kind!r}")
        for name in ("passage", "instruction", "before", "after", "prompt"):
            if not isinstance(getattr(spec, name), str):
                raise RequestError(f"{name} must be text")
        if spec.kind == "chat":
            _check_messages(spec.messages)
        if spec.stop is not None:
            _check_stop(spec.stop)
        check_steps(spec.steps)
        for name in ("max_canvases", "max_tokens"):
            value = getattr(spec, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise RequestError(f"{name} must be a positive integer, not {value!r}")
        if not _is_int(spec.seed):
            raise RequestError(f"seed must be an integer, not {spec.seed!r}")
        return spec.with_task()

    def with_task(self) -> "RedraftSpec":
        """The spec with its task: the one it names, which must be of its kind, or for an older client's spec
        the one its kind and instruction imply. The API's kinds (chat, complete) have none."""
        if not isinstance(self.task, str):
            raise RequestError("task must be text")
        if self.kind not in REQUEST_KINDS:
            if self.task:
                raise RequestError(f"a {self.kind} request has no task (tasks are for {', '.join(REQUEST_KINDS)})")
            return self
        if not self.task:
            return dataclasses.replace(self, task=task_for(self.kind, self.instruction))
        if self.task not in TASKS:
            raise RequestError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if TASKS[self.task][0] != self.kind:
            raise RequestError(f"task {self.task} is a {TASKS[self.task][0]}, not a {self.kind}")
        return self

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def check_steps(steps) -> None:
    """None (the checkpoint's own) or 1 to MAX_STEPS. The editor's HTTP API refuses with these words too."""
    if steps is not None and (not _is_int(steps) or not 1 <= steps <= MAX_STEPS):
        raise RequestError(f"steps must be an integer from 1 to {MAX_STEPS}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise RequestError("a chat needs messages: a non-empty list of {role, content}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise RequestError(f"messages[{i}] must be an object with exactly role and content")
        if message["role"] not in CHAT_ROLES:
            raise RequestError(f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}, not {message['role']!r}")
        if not isinstance(message["content"], str):
            raise RequestError(f"messages[{i}].content must be text")


def _check_stop(stop) -> None:
    if not isinstance(stop, list) or len(stop) > MAX_STOPS:
        raise RequestError(f"stop must be a list of at most {MAX_STOPS} strings")
    if not all(isinstance(text, str) and text for text in stop):
        raise RequestError("each stop string must be non-empty text")
    if any(len(text) > MAX_STOP_CHARS for text in stop):
        raise RequestError(f"each stop string must be at most {MAX_STOP_CHARS} characters")
