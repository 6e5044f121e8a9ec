"""Redraft tasks, and what a model declares it can do.

A task is what a person asks for in the editor's palette (fix the spelling, shorten, continue, ...). Each is
one of the prompt kinds of engine/text/prompts.py with a fixed instruction, except `instruct`, which carries the
person's own. A checkpoint declares the tasks it was trained for in its config.json:

    "redraft": {"tasks": ["fix"], "canvas_init": "passage", "edit_entropy_bound": 0.5,
                "lexicon": "lexicon.txt", "note": "A small local model: ..."}

`canvas_init` "passage" means the model was trained to start the canvas of a passage task (`COPY_TASKS`)
from the passage's own tokens and edit them in place (training/corruption.py, training/examples.py); "noise"
(the default, DiffusionGemma's own sampler) starts every canvas from uniform noise. `edit_entropy_bound`
(optional, with "passage") keeps the passage's token wherever the model was less sure than that
(engine.model.config.GenerationArgs). `lexicon` (optional, with "passage") names a file beside the config of
the words the model knows, with counts (engine/text/spelling.py): its fix then changes only words the lexicon
lacks, each into a known word one slip away, chosen in context (engine/text/slots.py). A checkpoint without a
declaration (DiffusionGemma itself, any instruction-tuned model) is taken to do every task.

Import-cheap (no torch): the server checks requests against a declaration with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# task id -> (prompt kind, fixed instruction; "" for the kind's default or the person's own)
TASKS: dict[str, tuple[str, str]] = {
    "rewrite": ("rewrite", "Rewrite this passage so that it reads more clearly. Keep its meaning."),
    "shorten": ("rewrite", "Make this passage shorter. Keep what matters."),
    "expand": ("rewrite", "Expand this passage with more detail."),
    "fix": ("rewrite", "Fix spelling, typos and doubled words. Change nothing else."),
    "instruct": ("rewrite", ""),
    "continue": ("continue", ""),
    "fill": ("fill", ""),
}
ALL_TASKS = tuple(TASKS)
COPY_TASKS = ("fix", "shorten", "rewrite")  # a "passage" model starts these canvases from the passage
CANVAS_INITS = ("noise", "passage")
MAX_NOTE_CHARS = 300
LEXICON_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")  # no path: the file lies beside config.json


@dataclass(frozen=True)
class ModelTasks:
    """What a loaded model declares: its tasks, how its passage canvases start, and a line for the palette."""

    tasks: tuple[str, ...] = ALL_TASKS
    canvas_init: str = "noise"
    note: str = ""
    edit_entropy_bound: float | None = None  # nats; see GenerationArgs.edit_entropy_bound
    lexicon: str | None = None  # a file name beside config.json

    def to_dict(self) -> dict:
        declared = {"tasks": list(self.tasks), "canvas_init": self.canvas_init, "note": self.note}
        if self.edit_entropy_bound is not None:
            declared["edit_entropy_bound"] = self.edit_entropy_bound
        if self.lexicon is not None:
            declared["lexicon"] = self.lexicon
        return declared


EVERY_TASK = ModelTasks()


def read_tasks(config: dict, source: str = "config.json") -> ModelTasks:
    """The `redraft` declaration of a checkpoint's config.json; EVERY_TASK when there is none.
    Raises ValueError (naming `source`) for a malformed one."""
    declared = config.get("redraft")
    if declared is None:
        return EVERY_TASK
    if not isinstance(declared, dict):
        raise ValueError(f"{source}: 'redraft' must be an object")
    tasks = declared.get("tasks", list(ALL_TASKS))
    if not isinstance(tasks, list) or not tasks or any(task not in TASKS for task in tasks):
        raise ValueError(f"{source}: redraft.tasks must be a non-empty list of {', '.join(ALL_TASKS)}")
    canvas_init = declared.get("canvas_init", "noise")
    if canvas_init not in CANVAS_INITS:
        raise ValueError(f"{source}: redraft.canvas_init must be one of {', '.join(CANVAS_INITS)}")
    note = declared.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"{source}: redraft.note must be text of at most {MAX_NOTE_CHARS} characters")
    bound = declared.get("edit_entropy_bound")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound >= 0):
        raise ValueError(f"{source}: redraft.edit_entropy_bound must be a number >= 0")
    lexicon = declared.get("lexicon")
    if lexicon is not None and (not isinstance(lexicon, str) or not LEXICON_NAME.fullmatch(lexicon)):
        raise ValueError(f"{source}: redraft.lexicon must be a file name beside it (letters, digits, . _ -)")
    ordered = tuple(task for task in ALL_TASKS if task in tasks)
    return ModelTasks(ordered, canvas_init, note, None if bound is None else float(bound), lexicon)


def task_for(kind: str, instruction: str) -> str:
    """The task of a request that names none (older clients): a rewrite with its own instruction is
    `instruct`, a plain rewrite `rewrite`, fill and continue themselves."""
    if kind == "rewrite":
        return "instruct" if instruction.strip() else "rewrite"
    return kind


def instruction_for(task: str, instruction: str) -> str:
    """The instruction the prompt carries: the task's fixed one, or the person's own for `instruct`."""
    return instruction if task == "instruct" else TASKS[task][1]
