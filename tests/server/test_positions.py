"""Relative positions resolved and made exactly as stock Yjs does, on documents where pycrdt's own sticky
indices are off (non-ASCII text in several items, deletions, restored text)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pycrdt import Assoc, Doc, Text

from server.redrafts.merge import RangeError, utf16_to_index
from server.redrafts.positions import Layout

SCRIPT = Path(__file__).resolve().parents[1] / "interop" / "positions.cjs"


@pytest.fixture(scope="module")
def yjs_document():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    made = json.loads(subprocess.run(["node", str(SCRIPT)], capture_output=True, text=True, check=True).stdout)
    doc = Doc()
    text = doc.get("content", type=Text)
    doc.apply_update(base64.b64decode(made["update"]))
    assert str(text) == made["text"]
    return doc, text, made


def code_point(value: str, utf16: int) -> int | None:
    try:
        return utf16_to_index(value, utf16)
    except RangeError:
        return None  # inside a surrogate pair: no place an editor can show


def test_every_yjs_position_resolves_where_yjs_puts_it(yjs_document):
    doc, text, made = yjs_document
    value = str(text)
    layout = Layout(doc, text, "content", value)
    checked = 0
    for key, encoded in made["positions"].items():
        index = code_point(value, int(key.split(":")[0]))
        if index is not None:
            assert layout.resolve(base64.b64decode(encoded)) == index, key
            checked += 1
    assert checked == 2 * (len(value) + 1)


def test_pins_are_the_bytes_yjs_makes(yjs_document):
    doc, text, made = yjs_document
    value = str(text)
    layout = Layout(doc, text, "content", value)
    for key, encoded in made["positions"].items():
        utf16, assoc = map(int, key.split(":"))
        index = code_point(value, utf16)
        if index is None or (assoc == 0 and index == len(value)):
            continue  # at the very end a pin associates with the last character instead (pin's docstring)
        pinned = layout.pin(index, Assoc.AFTER if assoc == 0 else Assoc.BEFORE)
        assert base64.b64encode(pinned).decode() == encoded, key


def test_pycrdt_sticky_indices_are_off_here(yjs_document):
    """Why positions.py exists: if pycrdt gets this document right, it can go."""
    from pycrdt import StickyIndex

    doc, text, made = yjs_document
    value = str(text)
    with doc.transaction() as txn:
        wrong = sum(
            StickyIndex.decode(base64.b64decode(encoded), text).get_index(txn) != int(key.split(":")[0])
            for key, encoded in made["positions"].items()
            if key.endswith(":0")
        )
    assert wrong > 0 and value


def test_pins_follow_edits_and_garbage_is_refused():
    doc = Doc()
    text = doc.get("content", type=Text)
    text += "ab😀cd"
    layout = Layout(doc, text, "content", str(text))
    start = layout.pin(3, Assoc.AFTER)
    end = layout.pin(5, Assoc.AFTER)  # the very end: associated with "d" instead
    text.insert(0, "xé")
    text += "!"
    later = Layout(doc, text, "content", str(text))
    assert (later.resolve(start), later.resolve(end)) == (5, 7)
    for garbage in (b"\xff\xff\xff", b"", b"\x03", base64.b64decode("AQVvdGhlcgA=")):  # last: root type "other"
        with pytest.raises(RangeError):
            later.resolve(garbage)
    with pytest.raises(RangeError, match="does not resolve"):
        later.resolve(bytes([0, 99, 0, 0]))  # a client this document never saw
