"""Vetting Yjs updates before they reach the document: surrogate splits and read-only news."""

import random

import pytest
from pycrdt import Doc, Text

from server.protocol import ProtocolError
from server.updates import (
    DeleteIndex,
    SurrogateIndex,
    _parse_any,
    _parse_typing,
    brings_news,
    decode_state_vector,
    parse_update,
)
from tests.server.test_stores import utf8_offset

# Made by yjs 13.6.33: a client typed "a😀b", then inserted "x" at UTF-16 index 2,
# between the emoji's two halves. Yjs shows "a\ufffdx\ufffdb"; yrs showed "a😀xb".
TYPED = bytes.fromhex("01019796ba9e0f00040107636f6e74656e740661f09f98806200")
SPLITTING_INSERT = bytes.fromhex("01019796ba9e0f04c49796ba9e0f019796ba9e0f02017800")


def test_parse_reads_structs_and_text():
    parsed = parse_update(TYPED)
    assert parsed.structs[0][:4] == (4090399511, 0, 4, "a😀b")  # the emoji counts 2 UTF-16 units
    assert (parsed.structs[0].origin, parsed.structs[0].parent) == (None, "content")
    assert parsed.deletions == []


def test_insert_between_surrogate_halves_is_caught():
    index = SurrogateIndex()
    index.add(parse_update(TYPED))
    assert index.first_split(parse_update(SPLITTING_INSERT)) == (4090399511, 2)


def test_edits_at_character_boundaries_pass():
    doc = Doc()
    text = doc.get("content", type=Text)
    index = SurrogateIndex()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for _ in range(200):
        before = doc.get_state()
        chars = str(text)
        if chars and rng.random() < 0.3:
            start = rng.randrange(len(chars))
            del text[utf8_offset(chars, start) : utf8_offset(chars, start + 1)]
        else:
            text.insert(utf8_offset(chars, rng.randrange(len(chars) + 1)), rng.choice(["a", "😀", "é", "𝒳", "中"]))
        parsed = parse_update(doc.get_update(before))
        assert index.first_split(parsed) is None, f"seed {seed}"
        index.add(parsed)


def test_every_insert_inside_a_pair_is_caught():
    # For a string of emoji, every odd UTF-16 offset is inside a pair.
    index = SurrogateIndex()
    index.add(parse_update(TYPED))
    inner = index.inner_clocks[4090399511]
    assert inner == {2}


def test_delete_index_and_news():
    doc = Doc()
    text = doc.get("content", type=Text)
    text += "hello world"
    state_before_delete = doc.get_update()
    del text[0:6]
    full = doc.get_update()
    deleted = DeleteIndex()
    deleted.add(parse_update(full))
    state = decode_state_vector(doc.get_state())
    # A peer that is in sync re-sends the whole delete set: nothing new.
    assert not brings_news(parse_update(full), state, deleted)
    # A peer that deletes something else brings news.
    other = Doc()
    other.apply_update(full)
    other_text = other.get("content", type=Text)
    sv = other.get_state()
    del other_text[0:1]
    assert brings_news(parse_update(other.get_update(sv)), state, deleted)
    # An older state brings nothing either.
    assert not brings_news(parse_update(state_before_delete), state, deleted)


def test_delete_index_merges_ranges():
    deleted = DeleteIndex()
    for start, end in [(10, 12), (0, 2), (2, 5), (11, 20), (30, 31)]:
        deleted._add(1, start, end)
    assert deleted.ranges[1] == [[0, 5], [10, 20], [30, 31]]
    assert deleted.covers(1, 12, 20) and not deleted.covers(1, 4, 11) and not deleted.covers(2, 0, 1)


@pytest.mark.parametrize("cut", [1, 3, 7, 12, 20])
def test_truncated_updates_are_protocol_errors(cut):
    with pytest.raises(ProtocolError):
        parse_update(TYPED[:cut])


def test_garbage_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        parse_update(b"\x01\x01\x05\x00\x1f")  # content type 31 does not exist


def typing_session(seed: int) -> list[bytes]:
    """Updates two typists make, as their editors send them (a transaction's own update, as Yjs' `update`
    event has it): keystrokes anywhere, pastes with emoji and accents, deletions, and edits that touch each
    other's text."""
    rng = random.Random(seed)
    docs = [Doc(client_id=rng.randrange(1, 2**32)) for _ in range(2)]
    texts = [doc.get("content", type=Text) for doc in docs]
    made: list[bytes] = []
    for doc in docs:
        doc.observe(lambda event: made.append(event.update))
    updates = []
    for _ in range(300):
        i = rng.randrange(2)
        doc, text, other = docs[i], texts[i], docs[1 - i]
        value = str(text)
        made.clear()
        at = utf8_offset(value, rng.randint(0, len(value)))
        roll = rng.random()
        if roll < 0.6:
            text.insert(at, rng.choice("abc xyz"))
        elif roll < 0.75:
            text.insert(at, rng.choice(["hello ", "naïve ", "🙂 ok", "日本語"]))
        elif value:
            start = rng.randrange(len(value))
            a, b = utf8_offset(value, start), utf8_offset(value, min(len(value), start + rng.randint(1, 3)))
            del text[a:b]
        if made:
            updates.append(made[0])
            other.apply_update(made[0])
    return updates


@pytest.mark.parametrize("seed", range(4))
def test_the_typing_fast_path_reads_what_the_general_parser_reads(seed):
    updates = typing_session(seed)
    fast = [_parse_typing(update) for update in updates]
    for update, parsed in zip(updates, fast):
        if parsed is not None:
            general = _parse_any(update, strict=True)
            assert parsed == general and parsed.is_typing and not general.is_typing
    assert sum(parsed is not None for parsed in fast) > len(updates) // 2  # the keystrokes and pastes
    assert any(parsed is None for parsed in fast)  # deletions go the general way


@pytest.mark.parametrize("cut", range(1, 40))
def test_a_cut_or_bent_keystroke_falls_back_to_the_general_parser_and_its_error(cut):
    doc = Doc(client_id=123456789)
    text = doc.get("content", type=Text)
    text += "ab"
    made: list[bytes] = []
    doc.observe(lambda event: made.append(event.update))
    text.insert(1, "é🙂x")
    update = made[0]
    assert _parse_typing(update) is not None
    bent = update[:cut] + bytes([update[cut] ^ 0x80]) + update[cut + 1 :] if cut < len(update) else update + b"\x00"
    for variant in (update[:cut], bent):
        try:
            expected = _parse_any(variant, strict=True)
        except ProtocolError:
            expected = None
        parsed = _parse_typing(variant)
        assert parsed is None or parsed == expected
        if expected is None:
            with pytest.raises(ProtocolError):
                parse_update(variant)
