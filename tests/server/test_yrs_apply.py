"""server/yrs_apply.apply_unobserved: yrs' apply without pycrdt's Python transaction, the same document."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from server.yrs_apply import STRETCH_BYTES, STRETCH_UPDATES, apply_all_unobserved, apply_unobserved, stretches
from tests.server.test_updates import typing_session


@pytest.mark.parametrize("seed", range(3))
def test_it_makes_the_document_pycrdts_apply_makes(seed):
    ours, theirs = Doc(), Doc()
    for update in typing_session(seed):  # keystrokes, pastes, deletions
        apply_unobserved(ours, update)
        theirs.apply_update(update)
    assert ours.get_update() == theirs.get_update()
    assert str(ours.get("content", type=Text)) == str(theirs.get("content", type=Text))


def test_a_bad_update_raises_changes_nothing_and_the_document_goes_on():
    doc = Doc()
    text = doc.get("content", type=Text)
    apply_unobserved(doc, typing_session(0)[0])
    before = doc.get_update()
    with pytest.raises(ValueError):
        apply_unobserved(doc, b"\x01\x02garbage")
    assert doc.get_update() == before
    text += "!"  # no transaction was left open
    assert str(text).endswith("!")


@pytest.mark.parametrize("seed", range(3))
def test_applying_a_stretch_in_one_transaction_makes_the_same_document(seed):
    session = typing_session(seed)
    ours, theirs = Doc(), Doc()
    for start in range(0, len(session), 7):
        apply_all_unobserved(ours, session[start : start + 7])
    for update in session:
        theirs.apply_update(update)
    assert str(ours.get("content", type=Text)) == str(theirs.get("content", type=Text))
    assert ours.get_state() == theirs.get_state()


def test_a_refused_update_in_a_stretch_raises_after_those_before_it_went_in():
    session = typing_session(0)
    doc = Doc()
    text = doc.get("content", type=Text)
    with pytest.raises(ValueError):
        apply_all_unobserved(doc, [*session[:3], b"\x01\x02garbage", *session[3:]])
    expected = Doc()
    for update in session[:3]:
        expected.apply_update(update)
    assert doc.get_state() == expected.get_state()
    text += "!"  # the transaction was committed and dropped
    assert str(text) == str(expected.get("content", type=Text)) + "!"


def test_stretches_hold_every_update_in_order_within_both_bounds():
    small, large = b"k" * 20, b"p" * (STRETCH_BYTES + 1)
    updates = [small] * (STRETCH_UPDATES + 3) + [large] + [small] * 5 + [b"h" * (STRETCH_BYTES // 2)] * 3
    cut = list(stretches(updates))
    assert [update for stretch in cut for update in stretch] == updates
    assert [len(stretch) for stretch in cut] == [STRETCH_UPDATES, 3, 1, 6, 2]
    assert all(len(s) == 1 or sum(map(len, s)) <= STRETCH_BYTES for s in cut)  # one larger update goes alone
    assert list(stretches([])) == []

