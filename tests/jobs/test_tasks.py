"""jobs/tasks.py: what a checkpoint's config.json declares, read back and checked."""

from __future__ import annotations

import pytest

from jobs.tasks import ALL_TASKS, EVERY_TASK, ModelTasks, read_tasks

DECLARED = {"tasks": ["fix", "shorten"], "canvas_init": "passage", "note": "Small.", "edit_entropy_bound": 0.5,
            "lexicon": "lexicon.txt"}


def test_a_declaration_round_trips_in_the_tasks_order():
    tasks = read_tasks({"redraft": DECLARED})
    assert tasks == ModelTasks(("shorten", "fix"), "passage", "Small.", 0.5, "lexicon.txt")
    assert read_tasks({"redraft": tasks.to_dict()}) == tasks
    assert "lexicon" not in ModelTasks(("fix",)).to_dict()
    assert read_tasks({}) is EVERY_TASK and EVERY_TASK.tasks == ALL_TASKS


@pytest.mark.parametrize("field, value, message", [
    ("tasks", ["fix", "summarise"], "redraft.tasks must be a non-empty list"),
    ("tasks", [], "redraft.tasks must be a non-empty list"),
    ("canvas_init", "prompt", "redraft.canvas_init must be one of noise, passage"),
    ("note", "x" * 301, "redraft.note must be text of at most 300 characters"),
    ("edit_entropy_bound", -1, "redraft.edit_entropy_bound must be a number >= 0"),
    ("edit_entropy_bound", True, "redraft.edit_entropy_bound must be a number >= 0"),
    ("lexicon", "../../etc/passwd", "redraft.lexicon must be a file name beside it"),
    ("lexicon", "/etc/passwd", "redraft.lexicon must be a file name beside it"),
    ("lexicon", "..", "redraft.lexicon must be a file name beside it"),
    ("lexicon", "", "redraft.lexicon must be a file name beside it"),
    ("lexicon", 7, "redraft.lexicon must be a file name beside it"),
])
def test_a_malformed_declaration_is_refused_naming_the_file(field, value, message):
    with pytest.raises(ValueError, match=f"^model/config.json: {message}"):
        read_tasks({"redraft": {**DECLARED, field: value}}, "model/config.json")
