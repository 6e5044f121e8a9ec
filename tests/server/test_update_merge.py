"""merge_all: many updates as one, the same as yrs' own merge of all of them at once."""

from __future__ import annotations

import random

import pytest
from pycrdt import Doc, Text, merge_updates

from server.update_merge import FAN_IN, merge_all


def typing_trace(num_updates: int, seed: int) -> list[bytes]:
    """Keystrokes and deletions by five typists into one text, each an update of its own."""
    rng = random.Random(seed)
    docs = [Doc(client_id=100 + i) for i in range(5)]
    texts = [doc.get("content", type=Text) for doc in docs]
    updates = []
    for _ in range(num_updates):
        i = rng.randrange(len(docs))
        before = docs[i].get_state()
        length = len(str(texts[i]))
        if length > 3 and rng.random() < 0.2:
            start = rng.randrange(length - 1)
            del texts[i][start : start + 1]
        else:
            texts[i].insert(rng.randrange(length + 1), rng.choice("abc "))
        update = docs[i].get_update(before)
        updates.append(update)
        for j, other in enumerate(docs):  # everyone sees it, as through the server
            if j != i:
                other.apply_update(update)
    return updates


def state_of(update: bytes) -> bytes:
    doc = Doc()
    doc.get("content", type=Text)
    doc.apply_update(update)
    return doc.get_update()


@pytest.mark.parametrize("num_updates", [1, 2, FAN_IN, FAN_IN + 1, FAN_IN * FAN_IN + 3])
def test_merged_in_rounds_it_is_the_update_one_merge_makes(num_updates):
    updates = typing_trace(num_updates, seed=num_updates)
    merged = merge_all(updates)
    assert state_of(merged) == state_of(merge_updates(*updates))
    assert merged == merge_updates(*updates)  # yrs' merge is canonical: the very same bytes


def test_one_update_is_its_own_merge():
    update = typing_trace(1, seed=0)[0]
    assert merge_all([update]) is update
