"""The engine's model as the server knows it: its name and what it declares it can do (jobs/tasks.py).

The editor offers only the declared tasks, and the server refuses the others with words a person reads
("redraft-small does not take free instructions; it does: shorten, fix spelling, continue, fill in") rather
than letting the engine fail on them. Each backend says which model it has: the in-process engine from its
checkpoint, Redis workers from what the newest live one publishes, an OpenAI-compatible server every task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobs.tasks import EVERY_TASK, ModelTasks, read_tasks

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 128  # a worker's published name is shown in the palette and in refusals

# What a task does, as the refusal says it: "<model> does not <verb>" ...
TASK_VERBS = {
    "rewrite": "rewrite passages more clearly",
    "shorten": "shorten passages",
    "expand": "expand passages",
    "fix": "fix spelling",
    "instruct": "take free instructions",
    "continue": "continue writing",
    "fill": "fill in text",
}
# ... "; it does: <words>, <words>"
TASK_WORDS = {
    "rewrite": "rewrite clearer",
    "shorten": "shorten",
    "expand": "expand",
    "fix": "fix spelling",
    "instruct": "free instructions",
    "continue": "continue",
    "fill": "fill in",
}


@dataclass(frozen=True)
class EngineModel:
    """`name` is None while nobody knows it yet (no worker seen): the model is then taken to do every task."""

    name: str | None = None
    tasks: ModelTasks = EVERY_TASK

    def to_json(self) -> dict:
        """What the editor learns from the session: the palette's presets, its model line and note."""
        return {"name": self.name, "tasks": list(self.tasks.tasks), "note": self.tasks.note}

    def refusal(self, task: str) -> str | None:
        """Why the model cannot do `task`, in plain words, or None when it declares it."""
        if task in self.tasks.tasks:
            return None
        does = ", ".join(TASK_WORDS[declared] for declared in self.tasks.tasks)
        return f"{self.name or 'the model'} does not {TASK_VERBS[task]}; it does: {does}"


UNKNOWN = EngineModel()


def display_name(source: str | None) -> str | None:
    """How the palette names a model given to --model: a checkpoint directory by its last part
    (`/srv/models/redraft-small/` -> redraft-small), a preset or shipped model by its name. (An upstream's model
    names, `org/model`, are shown whole: engines publish `model_name` for that reason.)"""
    if not source:
        return None
    return source.rstrip("/").rsplit("/", 1)[-1][:MAX_NAME_CHARS] or source[:MAX_NAME_CHARS]


def from_status(status: dict) -> EngineModel | None:
    """The model an engine or worker status dict names (`model_name`, and `tasks` as ModelTasks.to_dict() gives
    it), or None when it declares nothing (a worker still loading, or one older than declarations). A
    malformed declaration counts as none: the engine itself still refuses what it cannot do."""
    declared = status.get("tasks")
    if not isinstance(declared, dict):
        return None
    name = status.get("model_name")
    try:
        tasks = read_tasks({"redraft": declared}, f"the status of {name!r}"[:200])
    except ValueError as exc:
        # Debug only: Redis workers are polled every second, and a worker validated its own at load.
        log.debug("engine: ignoring a malformed task declaration: %s", exc)
        return None
    return EngineModel(name[:MAX_NAME_CHARS] if isinstance(name, str) and name else None, tasks)
