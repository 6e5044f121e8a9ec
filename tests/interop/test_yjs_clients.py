"""Stock Yjs clients (Node) and a pycrdt client edit one document through the server and converge.

Texts are full of characters that count differently in every layer: non-BMP
(two UTF-16 units in Yjs, four UTF-8 bytes in yrs, one code point in Python),
CJK (three UTF-8 bytes) and combining marks (two code points, one glyph).
"""

from __future__ import annotations

import itertools

import pytest
from pycrdt import Doc, Text

from tests.support.processes import wait_until

DOC = "interop-doc"
# Non-BMP (emoji, math script, a CJK extension B ideograph), BMP CJK, combining marks.
RICH = "a😀b 𝒳 中文 𠀋 e\u0301 n\u0303 👩‍💻"


def utf16(text: str, index: int) -> int:
    """The UTF-16 index (what Yjs counts) of code point `index` of `text`."""
    return len(text[:index].encode("utf-16-le")) // 2


def assert_no_refusals(*node_peers, py_clients=()):
    for peer in node_peers:
        codes = [e["code"] for e in peer.events() if e["type"] == "close"]
        assert not [c for c in codes if c is not None and 4000 <= c < 5000], codes
    for client in py_clients:
        assert client.errors == []
        assert not [c for c in client.close_codes if c is not None and 4000 <= c < 5000], client.close_codes


def test_pycrdt_text_indices_count_utf8_bytes():
    """What tests/support/pyclient.py converts code points to; a pycrdt upgrade that changes it fails here."""
    text = Doc().get("content", type=Text)
    text.insert(0, "a😀中")
    assert len(text) == 1 + 4 + 3
    text.insert(1 + 4, "|")  # right after the emoji
    assert str(text) == "a😀|中"
    del text[1 + 4 : 1 + 4 + 1]
    text.insert(len(text), "!")
    assert str(text) == "a😀中!"


@pytest.fixture
def server(start_server):
    return start_server()


def test_node_and_python_clients_converge_on_non_bmp_text(server, node_peers, py_clients):
    alice = node_peers(server.ws_url, DOC, name="alice")
    bob = node_peers(server.ws_url, DOC, name="bob")
    py = py_clients(server.ws_url, DOC, name="py")
    for client in (alice, bob, py):
        client.wait_synced()

    # Sequential edits, each seen by all before the next: the outcome is exact.
    expected = RICH
    alice.insert(0, RICH)
    for client in (alice, bob, py):
        client.wait_text(expected)

    # bob inserts right after the emoji (UTF-16 index 3), py right after the 𝒳 (code point 5).
    bob.insert(utf16(expected, 2), "[B🎉]")
    expected = expected[:2] + "[B🎉]" + expected[2:]
    py.wait_text(expected)
    at = expected.index("𝒳") + 1
    py.insert(at, "[P𝄞]")
    expected = expected[:at] + "[P𝄞]" + expected[at:]
    alice.wait_text(expected)
    bob.wait_text(expected)

    # Deletions spanning surrogate pairs and combining marks, from both kinds of client.
    at = expected.index("😀")
    py.delete(at, 3)  # "😀[B" in code points
    expected = expected[:at] + expected[at + 3 :]
    alice.wait_text(expected)
    at = expected.index("中")
    alice.delete(utf16(expected, at), utf16(expected, at + 4) - utf16(expected, at))  # "中文 𠀋"
    expected = expected[:at] + expected[at + 4 :]
    for client in (alice, bob, py):
        client.wait_text(expected)
    assert expected == "a🎉]b 𝒳[P𝄞]  e\u0301 n\u0303 👩‍💻"

    # Concurrent inserts at one place: every client ends with the same order of all three.
    alice.insert(utf16(expected, len(expected)), "<A😺>")
    bob.insert(utf16(expected, len(expected)), "<B𝔅>")
    py.insert(len(expected), "<P中>")
    candidates = {expected + "".join(p) for p in itertools.permutations(["<A😺>", "<B𝔅>", "<P中>"])}
    final = wait_until(lambda: _agreed(alice, bob, py), 10, "the three clients to agree")
    assert final in candidates
    assert_no_refusals(alice, bob, py_clients=[py])


def _agreed(*clients) -> str | None:
    texts = {client.text for client in clients}
    return texts.pop() if len(texts) == 1 else None


def test_late_joiners_get_the_whole_document(server, node_peers, py_clients):
    writer = node_peers(server.ws_url, DOC)
    writer.wait_synced()
    expected = ""
    for i, piece in enumerate([RICH, "𝒳" * 50, "中文" * 40, "e\u0301😀" * 30]):
        expected = writer.insert(utf16(expected, i), piece)  # at code point i
    assert expected.startswith("a𝒳中e\u0301😀")
    expected = writer.delete(0, utf16(expected, 2))  # "a𝒳"

    late_node = node_peers(server.ws_url, DOC)
    late_py = py_clients(server.ws_url, DOC)
    late_node.wait_synced()
    late_py.wait_synced()
    assert late_node.text == expected
    assert late_py.text == expected

    # And the late joiners' own edits reach the writer.
    late_py.insert(0, "🙂")
    late_node.wait_text("🙂" + expected)
    writer.wait_text("🙂" + expected)


def test_edits_made_offline_merge_on_reconnect(server, node_peers, py_clients):
    alice = node_peers(server.ws_url, DOC)
    bob = node_peers(server.ws_url, DOC)
    py = py_clients(server.ws_url, DOC)
    base = "0123456789😀𝒳中"
    alice.insert(0, base)
    for client in (bob, py):
        client.wait_text(base)

    alice.disconnect()
    py.disconnect()
    # Offline: alice deletes "234" and adds at the end; py inserts inside "234"
    # (its insert survives the concurrent deletion) and after the emoji.
    alice.delete(2, 3)
    offline = alice.text
    alice.insert(utf16(offline, len(offline)), "[A😺]")
    py.insert(3, "{p}")
    py.insert(py.text.index("😀") + 1, "{p𝔓}")
    # Online: bob edits the front.
    bob.insert(0, "<b🎉>")
    assert py.text == "012{p}3456789😀{p𝔓}𝒳中"
    assert alice.text == "0156789😀𝒳中[A😺]"

    alice.reconnect()
    py.connect()
    expected = "<b🎉>01{p}56789😀{p𝔓}𝒳中[A😺]"
    for client in (alice, bob, py):
        client.wait_text(expected)
    assert_no_refusals(alice, bob, py_clients=[py])


def _states_by_name(states: dict) -> dict[str, str]:
    return {state["user"]["name"]: str(client_id) for client_id, state in states.items() if "user" in state}


def test_awareness_reaches_others_and_disappears_on_disconnect(server, node_peers, py_clients):
    alice = node_peers(server.ws_url, DOC, name="alice")
    bob = node_peers(server.ws_url, DOC, name="bob")
    py = py_clients(server.ws_url, DOC, name="py")
    for client in (alice, bob, py):
        client.wait_synced()
    alice_id = str(alice.call("awareness")["clientId"])

    def bob_sees() -> dict[str, str]:
        return _states_by_name(bob.call("awareness")["states"])

    assert wait_until(lambda: bob_sees().keys() == {"alice", "bob", "py"}, 10, "bob to see everyone")
    assert bob_sees()["alice"] == alice_id
    states = py.wait_awareness(lambda s: {"alice", "bob"} <= _states_by_name(s).keys())
    assert _states_by_name(states) == {"alice": alice_id, "bob": str(bob.call("awareness")["clientId"])}

    # A field update (a cursor, say) travels too.
    alice.call("set_awareness", field="cursor", value={"anchor": 3})
    wait_until(lambda: bob.call("awareness")["states"][alice_id].get("cursor") == {"anchor": 3}, 10, "the cursor")
    py.wait_awareness(lambda s: s.get(int(alice_id), {}).get("cursor") == {"anchor": 3})

    # A client that says goodbye (y-websocket sends a null state on disconnect)...
    alice.disconnect()
    wait_until(lambda: bob_sees().keys() == {"bob", "py"}, 10, "alice to disappear for bob")
    py.wait_awareness(lambda s: _states_by_name(s).keys() == {"bob"})

    # ...and one that cannot (its process died): the server announces it for it.
    carol = node_peers(server.ws_url, DOC, name="carol")
    carol.wait_synced()
    wait_until(lambda: bob_sees().keys() == {"bob", "py", "carol"}, 10, "bob to see carol")
    carol.proc.kill()
    carol.proc.wait(5)
    wait_until(lambda: bob_sees().keys() == {"bob", "py"}, 10, "carol to disappear for bob")
    py.wait_awareness(lambda s: _states_by_name(s).keys() == {"bob"})

    # The python client's departure too, and its return.
    py.disconnect()
    wait_until(lambda: bob_sees().keys() == {"bob"}, 10, "py to disappear for bob")
    py.connect()
    wait_until(lambda: bob_sees().keys() == {"bob", "py"}, 10, "py to come back for bob")


def test_a_client_splitting_a_surrogate_pair_is_refused_and_nobody_diverges(server, node_peers, py_clients):
    """Yjs would keep two U+FFFD halves where yrs keeps something else: the server refuses the edit."""
    careless = node_peers(server.ws_url, DOC)
    other = node_peers(server.ws_url, DOC)
    py = py_clients(server.ws_url, DOC)
    careless.insert(0, "x😀y")
    other.wait_text("x😀y")
    py.wait_text("x😀y")

    careless.delete(0, 2)  # "x" and the emoji's high surrogate
    wait_until(lambda: any(e["type"] == "close" for e in careless.events()), 10, "the careless client to be closed")
    assert [(e["code"], e["reason"].split(":")[0]) for e in careless.events() if e["type"] == "close"][0] == (
        4422,
        "update splits a UTF-16 surrogate pair (an emoji) at client %d clock 2" % careless.call("awareness")["clientId"],
    )
    other.insert(4, "!")
    py.wait_text("x😀y!")
    assert other.text == "x😀y!"
