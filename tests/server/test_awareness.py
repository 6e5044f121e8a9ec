"""Awareness in memory: the server's clocks, the checks on every state, and who may speak for which id.

Payloads are written here byte by byte (varuints and JSON), not with the server's encoder, so the
decoder is checked against an independent reading of the y-protocols format.
"""

import json
from types import SimpleNamespace

import pytest

from server.awareness import MAX_CLOCK, AwarenessEntry, AwarenessStates, decode_awareness_update
from server.awareness_trust import AI_CLIENT_ID_MIN, RoomAwareness, StateRefused, vet_client_state
from server.protocol import ProtocolError
from tests.support.pyclient import write_bytes, write_uint

ALICE, BOB, MALLORY = 1111, 2222, 3333
AI = AI_CLIENT_ID_MIN + 7


def payload(*entries) -> bytes:
    """An awareness update from (client id, clock, state) triples; a state that is a str goes as it is."""
    out = write_uint(len(entries))
    for client_id, clock, state in entries:
        text = state if isinstance(state, str) else json.dumps(state)
        out += write_uint(client_id) + write_uint(clock) + write_bytes(text.encode())
    return out


def user(name="Ada", **fields) -> dict:
    return {"user": {"name": name, **fields}}


def conn(has_awareness_snapshot=False):
    """A connection as RoomAwareness sees one; `users` holds every user it was told its own state names."""
    users: list[dict] = []
    return SimpleNamespace(
        awareness_id=None, has_awareness_snapshot=has_awareness_snapshot, users=users, set_awareness_user=users.append
    )


def relayed(entries) -> dict[int, tuple[int, dict | None]]:
    return {e.client_id: (e.clock, json.loads(e.state_json)) for e in entries}


# --- the codec and the clocks ---------------------------------------------------------


def test_decoding_reads_what_was_written():
    data = payload((7, 1, user()), (2**40, 300, "null"))
    assert decode_awareness_update(data) == [
        AwarenessEntry(7, 1, '{"user": {"name": "Ada"}}'), AwarenessEntry(2**40, 300, "null")
    ]
    with pytest.raises(ProtocolError, match="trailing bytes"):
        decode_awareness_update(data + b"\x00")
    with pytest.raises(ProtocolError, match="runs past the frame end"):
        decode_awareness_update(data[:-3])


def test_the_server_relays_clocks_that_only_go_up():
    states = AwarenessStates()
    assert states.accept(AwarenessEntry(ALICE, 5, "{}")) == AwarenessEntry(ALICE, 5, "{}")
    assert states.accept(AwarenessEntry(ALICE, 9, "{}")).clock == 9  # the client's own, while it is ahead
    assert states.accept(AwarenessEntry(ALICE, 3, "{}")).clock == 10  # never below what observers saw
    # Someone announced the id at 10^15 and left: the removal goes out above that...
    states.accept(AwarenessEntry(ALICE, 10**15, '{"x":1}'))
    assert states.accept(states.removal(ALICE)) == AwarenessEntry(ALICE, 10**15 + 1, "null")
    # ...and the owner coming back with its own small clock is relayed above the removal: visible at once.
    assert states.accept(AwarenessEntry(ALICE, 11, "{}")) == AwarenessEntry(ALICE, 10**15 + 2, "{}")
    assert states.accept(AwarenessEntry(BOB, 1, "null")) is None  # nobody to remove


def test_departed_clocks_are_bounded_and_outdated_states_forgotten():
    now = [0.0]
    states = AwarenessStates(clock=lambda: now[0], max_departed=3)
    for client_id in range(10):
        states.accept(AwarenessEntry(client_id, 4, "{}"))
        states.accept(AwarenessEntry(client_id, 5, "null"))
    assert list(states.departed) == [7, 8, 9] and states.present == {}
    states.accept(AwarenessEntry(ALICE, 1, "{}"))
    now[0] = 20.0
    states.accept(AwarenessEntry(BOB, 1, "{}"))
    now[0] = 31.0
    assert [entry.client_id for entry in states.snapshot()] == [BOB]
    assert states.departed[ALICE] == 1  # forgotten, but its clock is not: it comes back above it
    assert states.accept(AwarenessEntry(ALICE, 1, "{}")).clock == 2


# --- what a state may hold ---------------------------------------------------------------


def test_a_good_state_is_relayed_with_the_role_stamped_and_no_ai_flag():
    state = {"user": {"name": "Ada", "color": "#d1495b", "colorLight": "#d1495b33", "ai": True, "role": "editor"},
             "cursor": {"anchor": {"type": {"client": 1, "clock": 2}, "tname": None, "item": None, "assoc": 0}}}
    out = json.loads(vet_client_state(json.dumps(state), 4096, "viewer"))
    assert out == {"user": {"name": "Ada", "color": "#d1495b", "colorLight": "#d1495b33", "role": "viewer"},
                   "cursor": state["cursor"]}
    assert json.loads(vet_client_state("{}", 4096, "editor")) == {"user": {"role": "editor"}}
    assert vet_client_state("null", 4096, "editor") == "null"
    named = vet_client_state('{"user":{"name":"名前😀"}}', 4096, "editor")
    assert json.loads(named)["user"]["name"] == "名前😀"


@pytest.mark.parametrize(
    "state, reason",
    [
        (user(color="red;position:fixed;top:0;background-image:url(http://evil/x)"), "awareness_invalid"),
        (user(color="#fff"), "awareness_invalid"),
        (user(color="#d1495b\n"), "awareness_invalid"),
        (user(colorLight="#d1495b33;x"), "awareness_invalid"),
        (user(color=["#d1495b;background:url(x)"]), "awareness_invalid"),
        (user(name="x" * 65), "awareness_invalid"),
        (user(name={"toString": "x"}), "awareness_invalid"),
        ({"user": "Ada"}, "awareness_invalid"),
        ([1, 2], "awareness_invalid"),
        ("just text", "awareness_invalid"),
        ({"deep": json.loads("[" * 40 + "]" * 40)}, "awareness_invalid"),
        ({"padding": "x" * 5000}, "awareness_too_large"),
        ('{"user":{"name":"\\ud800"}}', "awareness_invalid"),
    ],
    ids=["css-colour", "short-colour", "newline", "css-light", "array-colour", "long-name", "object-name",
         "user-not-object", "array", "string", "deep", "too-large", "lone-surrogate"],
)
def test_states_that_break_the_rules_are_refused(state, reason):
    text = state if isinstance(state, str) and state.startswith("{") else json.dumps(state)
    with pytest.raises(StateRefused) as refused:
        vet_client_state(text, 4096, "editor")
    assert refused.value.reason == reason


@pytest.mark.parametrize("text", ["{", '{"a":NaN}', "[" * 5000])
def test_bytes_that_are_not_json_are_a_protocol_fault(text):
    with pytest.raises(ProtocolError, match="not JSON"):
        vet_client_state(text, 1 << 20, "editor")


def test_a_state_from_another_instance_must_carry_its_role():
    assert json.loads(vet_client_state(json.dumps(user(role="viewer")), 4096))["user"]["role"] == "viewer"
    for role in (None, "admin"):
        with pytest.raises(StateRefused):
            vet_client_state(json.dumps(user(role=role)), 4096)


# --- who may speak for which id ----------------------------------------------------------


def test_a_connection_speaks_for_the_first_id_it_announces_only():
    room = RoomAwareness(4096)
    alice, mallory = conn(), conn()
    news, refused = room.from_client(alice, "editor", payload((ALICE, 3, user("Alice"))))
    assert relayed(news) == {ALICE: (3, {"user": {"name": "Alice", "role": "editor"}})} and not refused
    # Mallory (read-only) announces herself, then Alice's id with a huge clock, then a removal of Alice.
    news, refused = room.from_client(
        mallory, "viewer",
        payload((MALLORY, 1, user("M")), (ALICE, 10**6, user("EVIL-as-Alice")), (ALICE, 10**6 + 1, "null")),
    )
    assert relayed(news) == {MALLORY: (1, {"user": {"name": "M", "role": "viewer"}})}
    assert refused == {"awareness_foreign_id": 2}
    assert mallory.awareness_id == MALLORY and alice.awareness_id == ALICE
    # Mallory leaving removes Mallory, not Alice.
    assert relayed(room.leave(mallory)) == {MALLORY: (2, None)}
    # A joiner gets each state one clock on (it may be a client that remembers clock 3 from before it left).
    assert relayed(room.snapshot_for(conn())) == {ALICE: (4, {"user": {"name": "Alice", "role": "editor"}})}
    news, _ = room.from_client(alice, "editor", payload((ALICE, 4, user("Alice", cursor=1))))
    assert [entry.clock for entry in news] == [5]  # above what the joiner was told
    # Each connection is told the user of each of its own states shown (the name history records it under),
    # never one it claimed for another id.
    assert alice.users == [{"name": "Alice", "role": "editor"}, {"name": "Alice", "cursor": 1, "role": "editor"}]
    assert mallory.users == [{"name": "M", "role": "viewer"}]


def test_an_id_owned_by_a_live_connection_cannot_be_claimed_and_is_never_sent_back_to_its_claimant():
    room = RoomAwareness(4096)
    alice, squatter = conn(), conn()
    room.from_client(alice, "editor", payload((ALICE, 3, user("Alice"))))
    news, refused = room.from_client(squatter, "viewer", payload((ALICE, 50, user("EVIL"))))
    assert news == [] and refused == {"awareness_id_taken": 1}
    assert squatter.awareness_id == ALICE  # bound to it: it speaks for nothing else, and never hears it
    assert room.snapshot_for(squatter) == []
    # When the holder leaves, the one kept out is shown at once, with what it last said.
    assert squatter.users == []  # not shown, so not who it is yet
    assert relayed(room.leave(alice)) == {ALICE: (50, {"user": {"name": "EVIL", "role": "viewer"}})}
    assert squatter.users == [{"name": "EVIL", "role": "viewer"}]
    assert room.leave(squatter)[0].is_removal
    assert alice.users == [{"name": "Alice", "role": "editor"}]  # a removal tells no one a new name


def test_echoes_of_relayed_states_are_dropped_without_counting():
    room = RoomAwareness(4096)
    alice, bob = conn(), conn(has_awareness_snapshot=True)
    room.from_client(alice, "editor", payload((ALICE, 3, user("Alice"))))
    room.from_server_peer(AwarenessEntry(AI, 4, '{"user":{"name":"Redraft AI"},"redrafts":[]}'))
    # A stock client with no state of its own yet echoes what it was sent: that claims nothing.
    news, refused = room.from_client(bob, "editor", payload((ALICE, 3, user("Alice")), (AI, 4, "{}")))
    assert (news, refused, bob.awareness_id) == ([], {}, None)
    news, refused = room.from_client(bob, "editor", payload((BOB, 0, user("Bob")), (ALICE, 3, "null")))
    assert list(relayed(news)) == [BOB] and refused == {}  # a timed-out removal: same clock, an echo


def test_reserved_ids_huge_clocks_and_floods_are_refused():
    room = RoomAwareness(4096)
    room.from_server_peer(AwarenessEntry(AI, 13, '{"redrafts":[]}'))
    mallory = conn()
    news, refused = room.from_client(mallory, "viewer", payload((AI, 10**15, "null"), (AI + 1, 1, user("AI"))))
    assert news == [] and refused == {"awareness_reserved_id": 2} and mallory.awareness_id is None
    news, refused = room.from_client(mallory, "viewer", payload((MALLORY, MAX_CLOCK + 1, user())))
    assert news == [] and refused == {"awareness_clock": 1}
    # The AI's next state is relayed above anything it said before.
    assert relayed(room.from_server_peer(AwarenessEntry(AI, 14, '{"redrafts":[1]}'))) == {AI: (14, {"redrafts": [1]})}
    flood = payload(*[(client_id, 1, "{}") for client_id in range(30_000)])
    news, refused = room.from_client(mallory, "viewer", flood)
    assert news == [] and refused == {"awareness_too_many": 1}
    assert len(room.states.present) == 1


def test_states_from_other_instances():
    room = RoomAwareness(4096)
    alice = conn()
    room.from_client(alice, "editor", payload((ALICE, 3, user("Alice"))))
    bob_state = user("Bob", role="editor")
    news, refused = room.from_remote("B", payload(
        (BOB, 4, bob_state), (ALICE, 99, user("EVIL", role="editor")), (AI, 2, '{"redrafts":[]}'),
        (MALLORY, 1, user("M", color="red;x", role="viewer"))))
    assert relayed(news) == {BOB: (4, bob_state), AI: (2, {"redrafts": []})}
    assert refused == {"remote_awareness_owned_here": 1, "remote_awareness_invalid": 1}
    # Bob moved to instance C; B's goodbye arrives late and is not news.
    room.from_remote("C", payload((BOB, 5, bob_state)))
    assert room.from_remote("B", payload((BOB, 6, "null"))) == ([], {})
    assert relayed(room.from_remote("C", payload((BOB, 6, "null"))) [0]) == {BOB: (6, None)}
    # Asked who is here, an instance answers for its own clients only.
    assert [entry.client_id for entry in room.authoritative()] == [ALICE]


def test_an_id_shown_for_another_instance_is_taken_until_that_instance_lets_go():
    now = [0.0]
    room = RoomAwareness(4096, clock=lambda: now[0])
    room.from_remote("B", payload((BOB, 4, user("Bob", role="editor"))))
    mallory, bob_here = conn(), conn()
    assert room.from_client(mallory, "viewer", payload((BOB, 10**6, user("EVIL")))) == ([], {"awareness_id_taken": 1})
    # Bob leaves B and comes here: taken in once B says he left...
    room.from_remote("B", payload((BOB, 5, "null")))
    news, _ = room.from_client(bob_here, "editor", payload((BOB, 4, user("Bob"))))
    assert relayed(news) == {BOB: (6, {"user": {"name": "Bob", "role": "editor"}})}
    # ...or, if B crashed, once its state is 30 s old.
    room.from_remote("B", payload((ALICE, 1, user("Alice", role="editor"))))
    alice_here = conn()
    assert room.from_client(alice_here, "editor", payload((ALICE, 1, user("Alice"))))[0] == []
    now[0] = 31.0
    assert relayed(room.from_client(alice_here, "editor", payload((ALICE, 2, user("Alice"))))[0]) == {
        ALICE: (2, {"user": {"name": "Alice", "role": "editor"}})}
