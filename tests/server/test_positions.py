"""UTF-16 offsets, and relative positions resolved and made exactly as stock Yjs does, on documents where pycrdt's own sticky
indices are off (non-ASCII text in several items, deletions, restored text)."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from pycrdt import Assoc, Doc, Text

from server.redrafts.positions import Layout, RangeError, utf16_to_index
from server.updates import utf16_length

SCRIPT = Path(__file__).resolve().parents[1] / "interop" / "positions.cjs"


def test_utf16_indices_convert_and_refuse_split_pairs():
    text = "a😀b"
    assert [utf16_to_index(text, i) for i in (0, 1, 3, 4)] == [0, 1, 2, 3]
    assert utf16_length(text[:2]) == 3 and utf16_length(text) == 4
    with pytest.raises(RangeError, match="inside a character"):
        utf16_to_index(text, 2)
    with pytest.raises(RangeError, match="beyond the end"):
        utf16_to_index(text, 5)
    with pytest.raises(RangeError):
        utf16_to_index(text, -1)


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


def yjs_positions(update: bytes, utf16_indices: list[int]) -> dict[str, str]:
    """Stock Yjs' relative positions (base64) at the given UTF-16 indices of a document, both associations."""
    script = (
        "const path = require('path'); const { createRequire } = require('module');"
        f"const Y = createRequire(path.join({json.dumps(str(SCRIPT.parents[2] / 'web'))}, 'package.json'))('yjs');"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const doc = new Y.Doc(); Y.applyUpdate(doc, Buffer.from(input.update, 'base64'));"
        "const text = doc.getText('content'); const out = {};"
        "for (const i of input.indices) for (const a of [0, -1]) out[i + ':' + a] = Buffer.from("
        "Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(text, i, a))).toString('base64');"
        "console.log(JSON.stringify(out))"
    )
    request = json.dumps({"update": base64.b64encode(update).decode(), "indices": utf16_indices})
    done = subprocess.run(["node", "-e", script], input=request, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def code_point(value: str, utf16: int) -> int | None:
    try:
        return utf16_to_index(value, utf16)
    except RangeError:
        return None  # inside a surrogate pair: no place an editor can show


def test_every_yjs_position_resolves_where_yjs_puts_it(yjs_document):
    doc, text, made = yjs_document
    value = str(text)
    layout = Layout(doc.get_update(), "content", value)
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
    layout = Layout(doc.get_update(), "content", value)
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
    layout = Layout(doc.get_update(), "content", str(text))
    start = layout.pin(3, Assoc.AFTER)
    end = layout.pin(5, Assoc.AFTER)  # the very end: associated with "d" instead
    text.insert(0, "xé")
    text += "!"
    later = Layout(doc.get_update(), "content", str(text))
    assert (later.resolve(start), later.resolve(end)) == (5, 7)
    for garbage in (b"\xff\xff\xff", b"", b"\x03", base64.b64decode("AQVvdGhlcgA=")):  # last: root type "other"
        with pytest.raises(RangeError):
            later.resolve(garbage)
    with pytest.raises(RangeError, match="does not resolve"):
        later.resolve(bytes([0, 99, 0, 0]))  # a client this document never saw


def test_a_much_edited_document_maps_exactly():
    """Two writers, hundreds of interleaved inserts and deletions with non-ASCII text: every pin resolves
    back to its index, and is the position stock Yjs makes there."""
    docs = [Doc(client_id=client) for client in (1, 2)]
    texts = [doc.get("content", type=Text) for doc in docs]
    rng = random.Random(3)
    for step in range(600):
        text = texts[step % 2]
        value = str(text)
        at = rng.randint(0, len(value))
        text.insert(len(value[:at].encode()), rng.choice(["é ", "wörld ", "😀 ", "plain "]))
        value = str(text)
        if step % 5 == 0 and len(value) > 8:
            cut = rng.randint(0, len(value) - 4)
            del text[len(value[:cut].encode()) : len(value[: cut + 3].encode())]
        docs[1 - step % 2].apply_update(docs[step % 2].get_update(docs[1 - step % 2].get_state()))
    value = str(texts[0])
    assert value == str(texts[1])
    update = docs[0].get_update()
    layout = Layout(update, "content", value)
    assert sum(map(len, layout.blocks.values())) > 300
    indices = list(range(0, len(value) + 1, 7))
    for index in indices:
        assert layout.resolve(layout.pin(index, Assoc.AFTER)) == index
        assert layout.resolve(layout.pin(index, Assoc.BEFORE)) == index
    made = yjs_positions(update, [utf16_length(value[:index]) for index in indices])
    for index in indices:
        utf16 = utf16_length(value[:index])
        for assoc, name in ((0, Assoc.AFTER), (-1, Assoc.BEFORE)):
            if assoc == 0 and index == len(value):
                continue
            assert base64.b64encode(layout.pin(index, name)).decode() == made[f"{utf16}:{assoc}"]


def test_a_snapshot_that_does_not_hold_the_text_is_refused():
    doc = Doc()
    doc.get("content", type=Text).insert(0, "abc")
    with pytest.raises(RangeError, match="does not hold the text"):
        Layout(doc.get_update(), "content", "abd")
