"""What an update would cost, decided before applying it: checked against what yrs then does.

Updates are written byte by byte (lib0 varuints, Yjs v1 structs) so that they can be what no Yjs client
makes: dependency cycles, gaps, deletions of clocks nobody wrote.
"""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from server.budgets import PendingUpdates, first_missing, growth_bytes, integrates_whole
from server.updates import DeleteIndex, advance_clocks, decode_state_vector, parse_update
from tests.support.pyclient import write_uint  # the test side's own encoder, not the server's

A, B = 1_000_001, 2_000_002


def item(text: str, origin: tuple[int, int] | None = None, right: tuple[int, int] | None = None) -> bytes:
    """A string item (content ref 4); without neighbours its parent is the root type "content"."""
    info = 4 | (0x80 if origin else 0) | (0x40 if right else 0)
    out = bytes([info])
    for neighbour in (origin, right):
        if neighbour:
            out += write_uint(neighbour[0]) + write_uint(neighbour[1])
    if not origin and not right:
        out += write_uint(1) + write_uint(7) + b"content"
    return out + write_uint(len(text.encode())) + text.encode()


def run(client: int, clock: int, *structs: bytes) -> bytes:
    return write_uint(len(structs)) + write_uint(client) + write_uint(clock) + b"".join(structs)


def update(*runs: bytes, deletes: tuple[tuple[int, int, int], ...] = ()) -> bytes:
    """Runs of structs, then a delete set of (client, clock, length) ranges, grouped by client as Yjs writes
    it (yrs keeps only the last entry of a client that appears twice)."""
    by_client: dict[int, list[tuple[int, int]]] = {}
    for client, clock, length in deletes:
        by_client.setdefault(client, []).append((clock, length))
    ds = write_uint(len(by_client)) + b"".join(
        write_uint(client) + write_uint(len(ranges)) + b"".join(write_uint(k) + write_uint(n) for k, n in ranges)
        for client, ranges in by_client.items()
    )
    return write_uint(len(runs)) + b"".join(runs) + ds


def integrated_whole(base: bytes, candidate: bytes) -> bool:
    """Whether yrs integrates every clock of `candidate` (nothing of it left pending)."""
    doc = Doc()
    doc.get("content", type=Text)
    doc.apply_update(base)
    doc.apply_update(candidate)
    state = decode_state_vector(doc.get_state())
    parsed = parse_update(candidate)
    return all(state.get(b.client, 0) >= b.clock + b.length for b in parsed.blocks) and all(
        state.get(c, 0) >= k + n for c, k, n in parsed.deletions
    )


BASE = update(run(A, 0, item("hello")))  # A:0-4

CASES = {
    "typing after the text": (update(run(B, 0, item("!", origin=(A, 4)))), None),
    "a gap in the client's own clocks": (update(run(A, 7, item("x", origin=(A, 4)))), (A, 6)),
    "an origin nobody wrote": (update(run(B, 0, item("x", origin=(9, 3)))), (9, 3)),
    "a right origin past the text": (update(run(B, 0, item("x", right=(A, 5)))), (A, 5)),
    # B's item comes after A's in the encoding, yet A:5 needs it: both land, in yrs' order.
    "a dependency later in the same update": (
        update(run(A, 5, item("a", origin=(B, 0))), run(B, 0, item("b", origin=(A, 4)))),
        None,
    ),
    "a cycle between two clients": (
        update(run(A, 5, item("a", origin=(B, 0))), run(B, 0, item("b", origin=(A, 5)))),
        (B, 0),
    ),
    "deleting what exists": (update(deletes=((A, 1, 2),)), None),
    "deleting clocks nobody wrote": (update(deletes=((A, 3, 10),)), (A, 5)),
}


@pytest.mark.parametrize("candidate, missing", CASES.values(), ids=CASES.keys())
def test_first_missing_agrees_with_yrs(candidate, missing):
    clocks: dict[int, int] = {}
    advance_clocks(clocks, parse_update(BASE))
    found = first_missing(parse_update(candidate), clocks)
    assert found == missing
    assert integrated_whole(BASE, candidate) == (missing is None)


def replica(*updates: bytes) -> Doc:
    doc = Doc()
    doc.get("content", type=Text)
    for one in updates:
        doc.apply_update(one)
    return doc


def what_yrs_integrates(base: bytes, candidate: bytes) -> bytes | None:
    """The update yrs reports for applying `candidate` on top of `base`, None when it changed nothing."""
    doc = replica(base)
    made: list[bytes] = []
    subscription = doc.observe(lambda event: made.append(event.update))
    doc.apply_update(candidate)
    doc.unobserve(subscription)
    return made[0] if made else None


WHOLE_CASES = {
    **{name: (candidate, missing is None and "delet" not in name) for name, (candidate, missing) in CASES.items()},
    # Found whole by first_missing, but A:5's origin is B's struct in the same update: left to the slow path.
    "a dependency later in the same update": (CASES["a dependency later in the same update"][0], False),
    "typing a run of its own": (update(run(B, 0, item("a", origin=(A, 4)), item("b", origin=(B, 0)))), True),
    "typing on after its own text": (update(run(A, 5, item("!", origin=(A, 4)))), True),
    "repeating what the document has": (update(run(A, 0, item("hello"))), False),
    "half old, half new": (update(run(A, 3, item("lo!", origin=(A, 2)))), False),
    "a keystroke and a deletion": (update(run(B, 0, item("!", origin=(A, 4))), deletes=((A, 0, 1),)), False),
    "a GC range": (update(run(B, 0, b"\x00" + write_uint(3))), False),
    # No neighbours, and a parent item (9, 3) in place of the root's name: nobody wrote it.
    "a parent nobody wrote": (update(run(B, 0, b"\x04\x00" + write_uint(9) + write_uint(3) + b"\x01x")), False),
    "nothing at all": (update(), False),
}


@pytest.mark.parametrize("candidate, is_whole", WHOLE_CASES.values(), ids=WHOLE_CASES.keys())
def test_integrates_whole_only_what_yrs_integrates_exactly_as_sent(candidate, is_whole):
    """The room skips observing yrs for an update found whole and stores and broadcasts the update as sent in
    place of what yrs integrated: on any replica that has the document, the two must do the same. (yrs may
    encode it otherwise: a run of one client's structs becomes one item.)"""
    clocks: dict[int, int] = {}
    advance_clocks(clocks, parse_update(BASE))
    assert integrates_whole(parse_update(candidate), clocks) == is_whole
    if is_whole:
        integrated = what_yrs_integrates(BASE, candidate)
        assert integrated is not None
        as_sent, as_integrated = replica(BASE, candidate), replica(BASE, integrated)
        assert as_sent.get_update() == as_integrated.get_update()


def test_growth_counts_only_news():
    """A reconnecting client's sync step 2 repeats the document and its deletions: only its keystroke counts."""
    doc = Doc()
    text = doc.get("content", type=Text)
    text.insert(0, "hello world " * 500)
    del text[0:6]
    server_state = doc.get_update()
    clocks: dict[int, int] = {}
    deleted = DeleteIndex()
    advance_clocks(clocks, parse_update(server_state))
    deleted.add(parse_update(server_state))
    before = doc.get_state()
    text.insert(3, "!")
    keystroke = doc.get_update(before)
    step2 = doc.get_update()  # what a client that missed nothing would send back in full
    assert growth_bytes(parse_update(step2), clocks, deleted) == growth_bytes(parse_update(keystroke), clocks, deleted)
    # Its own bytes, the header of its client's run, and the two items it may cut (its neighbours).
    assert 0 < growth_bytes(parse_update(keystroke), clocks, deleted) < len(keystroke) + 20 + 2 * 24


def test_growth_bounds_what_a_gc_only_update_adds():
    """8 bytes on the wire per GC-only client, 15 in the document's encoding (which lists GC ranges as
    deletions): the charge is not below what yrs then stores."""
    clients = range(1 << 27, (1 << 27) + 500)
    gc_only = write_uint(len(clients)) + b"".join(run(c, 0, b"\x00" + write_uint(1)) for c in clients) + write_uint(0)
    doc = Doc()
    doc.apply_update(gc_only)
    stored = len(doc.get_update())
    assert len(gc_only) < stored <= growth_bytes(parse_update(gc_only), {}, DeleteIndex())


def test_deletions_that_cut_items_are_charged_for_the_cuts():
    doc = Doc(client_id=A)
    text = doc.get("content", type=Text)
    text.insert(0, "ab" * 2_000)
    state = doc.get_update()
    clocks: dict[int, int] = {}
    advance_clocks(clocks, parse_update(state))
    cuts = update(deletes=tuple((A, 2 * i + 1, 1) for i in range(2_000)))
    doc.apply_update(cuts)
    grown = len(doc.get_update()) - len(state)
    assert grown > 2 * len(cuts)  # the encoding grows far more than the delete set's own bytes
    assert grown <= growth_bytes(parse_update(cuts), clocks, DeleteIndex())


def test_pending_updates_are_let_go_when_what_they_wait_for_arrives():
    pending = PendingUpdates()
    clocks: dict[int, int] = {}
    advance_clocks(clocks, parse_update(BASE))
    waiting = parse_update(update(run(B, 0, item("x", origin=(A, 6)))))
    pending.hold(100, waiting, first_missing(waiting, clocks))
    unrelated = parse_update(update(run(B + 1, 0, item("y", origin=(A, 4)))))
    advance_clocks(clocks, unrelated)
    pending.advance(unrelated, clocks)
    assert (pending.num_bytes, len(pending)) == (100, 1)
    # What it waits for arrives: yrs integrates it from its pending store in the same transaction.
    arrived = parse_update(update(run(A, 5, item("12", origin=(A, 4)))))
    advance_clocks(clocks, arrived)
    pending.advance(arrived, clocks)
    assert (pending.num_bytes, len(pending)) == (0, 0)
