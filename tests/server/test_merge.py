"""The redraft merge on real pycrdt documents: the diff, concurrent edits, undo."""

from __future__ import annotations

import random

import pytest
from pycrdt import Doc, Text, UndoManager

from server.redrafts import merge


def apply_edits(old: str, ops) -> str:
    for start, end, replacement in reversed(ops):
        old = old[:start] + replacement + old[end:]
    return old


def test_edits_turn_old_into_new_and_stay_fine_grained():
    rng = random.Random(7)
    alphabet = "ab c😀é.\n"
    for _ in range(2000):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert apply_edits(old, merge.edits(old, new)) == new
    # Unchanged words are not touched: an insert between them keeps its place.
    assert merge.edits("hello world", "hello brave new world") == [(6, 6, "brave new ")]


def replica(source: Doc) -> tuple[Doc, Text]:
    doc = Doc()
    doc.apply_update(source.get_update())
    return doc, doc.get("content", type=Text)


def sync(src: Doc, dst: Doc) -> None:
    dst.apply_update(src.get_update(dst.get_state()))


def byte_index(value: str, index: int) -> int:
    return len(value[:index].encode())


@pytest.mark.parametrize(
    "before, passage, after, result",
    [
        ("Intro. ", "The quick brown fox jumps over the dog.", " Outro.", "A quick red fox leaps over the lazy dog!"),
        ("Ünïcode 😀 ", "naïve café 🦊 here and there", " fin 🎉", "naive cafe 🦊🦊 over here and there 😀"),
    ],
)
def test_merge_keeps_concurrent_edits_and_undo_removes_only_the_redraft(before, passage, after, result):
    live = Doc()
    live_text = live.get("content", type=Text)
    live_text += before + passage + after
    value = str(live_text)
    fork = merge.Fork(live.get_update(), len(before), len(before) + len(passage), passage, value)
    assert fork.passage == passage

    # While the engine works, a collaborator types inside the passage (in a word the result keeps),
    # before and after it, and deletes a character of the text after it.
    other, other_text = replica(live)
    inside = passage.index("here") if "here" in passage else passage.index("over")
    v = str(other_text)
    other_text.insert(byte_index(v, len(before) + len(passage) + len(after)), "[end]")
    v = str(other_text)
    del other_text[byte_index(v, len(before) + len(passage) + 2) : byte_index(v, len(before) + len(passage) + 3)]
    v = str(other_text)
    other_text.insert(byte_index(v, len(before) + inside), "[in]")
    v = str(other_text)
    other_text.insert(byte_index(v, 1), "[out]")
    collaborator_text = str(other_text)
    sync(other, live)

    update = merge.merge_update(fork, result, set())
    manager = UndoManager(scopes=[live_text], capture_timeout_millis=0)
    manager.include_origin("redraft:1")
    with live.transaction(origin="redraft:1"):
        live.apply_update(update)
    merged = str(live_text)

    # Outside the passage the text is exactly the collaborator's (their insert and deletion included); inside,
    # it is the result with their insert still before the word they typed it in front of.
    prefix = collaborator_text[: len(before) + len("[out]")]
    suffix = collaborator_text[len(prefix) + len(passage) + len("[in]") :]
    assert merged.startswith(prefix) and merged.endswith(suffix)
    middle = merged[len(prefix) : len(merged) - len(suffix)]
    assert middle.replace("[in]", "") == result
    assert "[in]" + passage[inside:].split()[0] in middle

    # Someone keeps typing after the merge; undo then reverts the redraft alone.
    late, late_text = replica(live)
    late_text.insert(0, ">> ")
    sync(late, live)
    manager.undo()
    assert str(live_text) == ">> " + collaborator_text
