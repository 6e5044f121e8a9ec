"""Several server processes on one real redis-server serve one document together.

Updates travel between instances through the document's Redis stream, awareness
through pub/sub; every instance drops what it published itself, so nothing
echoes. The metrics tell exactly how many updates each instance integrated from
its own clients and from the others, and the shared log's length tells whether
anything was published twice: "nothing echoes" becomes equalities.
"""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.support.processes import wait_until

DOC = "shared-doc"


def utf16(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def updates_total(server) -> dict[str, float]:
    """`redraft_updates_total` by source, from the instance's /metrics."""
    counts = {"client": 0.0, "remote": 0.0}
    for line in httpx.get(server.http_url + "/metrics", timeout=5).text.splitlines():
        for source in counts:
            prefix = f'redraft_updates_total{{source="{source}"}} '
            if line.startswith(prefix):
                counts[source] = float(line[len(prefix) :])
    return counts


def appends(server) -> float:
    """Log entries the instance appended (one per group-committed batch of its clients' updates)."""
    for line in httpx.get(server.http_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("redraft_store_append_seconds_count "):
            return float(line.split()[-1])
    return 0.0


def agreed(*clients) -> str | None:
    texts = {client.text for client in clients}
    return texts.pop() if len(texts) == 1 else None


@pytest.fixture
def instances(redis_server, start_server):
    return start_server("a", redis_url=redis_server.url), start_server("b", redis_url=redis_server.url)


def test_clients_on_two_instances_converge_and_nothing_echoes(instances, redis_server, node_peers, py_clients):
    a, b = instances
    alice = node_peers(a.ws_url, DOC, name="alice")
    bob = node_peers(b.ws_url, DOC, name="bob")
    py = py_clients(b.ws_url, DOC)
    for client in (alice, bob, py):
        client.wait_synced()

    alice.insert(0, "hello 😀 from A")
    bob.wait_text("hello 😀 from A")
    bob.insert(utf16("hello 😀", 8), " and 𝒳 from B,")
    expected = "hello 😀 and 𝒳 from B, from A"
    alice.wait_text(expected)
    py.wait_text(expected)

    # A burst of concurrent keystrokes on both instances.
    for i in range(20):
        alice.insert(0, f"a{i}")
        bob.call("apply_ops", ops=[{"op": "append", "text": f"b{i}"}])  # at bob's end, whatever A sent
        if i % 5 == 0:
            py.insert(len(expected) // 2, f"p{i}")
    final = wait_until(lambda: agreed(alice, bob, py), 10, "clients on both instances to agree")
    assert final.startswith("a19a18") and final.endswith("b18b19")
    pieces = [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)] + [f"p{i}" for i in range(0, 20, 5)]
    assert len(final) == len(expected) + sum(map(len, pieces))

    # Each instance integrated every log entry the other appended, once.
    counts_a, counts_b = updates_total(a), updates_total(b)
    appended_a, appended_b = appends(a), appends(b)
    assert counts_a["client"] == 1 + 20  # alice's first insert and her 20 keystrokes
    assert counts_b["client"] == 1 + 20 + 4  # bob's 21 inserts and py's 4
    # Group commit may merge updates that arrive together into one entry, never more.
    assert 1 <= appended_a <= counts_a["client"] and 1 <= appended_b <= counts_b["client"]
    assert counts_a["remote"] == appended_b
    assert counts_b["remote"] == appended_a
    # And the shared log holds exactly what the instances appended: one re-publishing what it
    # got from the other would add entries.
    log = redis.Redis.from_url(redis_server.url)
    try:
        assert log.xlen(f"redraft:doc:{DOC}:log") == appended_a + appended_b
        # Nothing keeps bouncing once everyone agrees. The proof is a round trip of markers, A to B to A to B:
        # each instance reads the log in order, so an echo of anything written before a marker is read before
        # it, and once the last marker has arrived every echo the burst could have caused has been counted.
        text = final
        for writer, reader, marker in ((alice, bob, "<"), (bob, alice, ">"), (alice, bob, "|")):
            writer.insert(0, marker)
            text = marker + text
            reader.wait_text(text)
        # An instance counts its append a moment after the other may have read it: wait for the counts to meet.
        wait_until(lambda: (updates_total(a)["remote"], updates_total(b)["remote"]) == (appends(b), appends(a)),
                   10, "each instance to have integrated exactly the entries the other appended")
        counts_a, counts_b = updates_total(a), updates_total(b)
        assert (counts_a["client"], counts_b["client"]) == (1 + 20 + 2, 1 + 20 + 4 + 1)  # and the markers
        assert appends(a) <= counts_a["client"] and appends(b) <= counts_b["client"]
        assert log.xlen(f"redraft:doc:{DOC}:log") == appends(a) + appends(b)
    finally:
        log.close()


def test_a_later_instance_and_a_restarted_one_catch_up(instances, redis_server, start_server, node_peers):
    a, b = instances
    alice = node_peers(a.ws_url, DOC)
    bob = node_peers(b.ws_url, DOC)
    alice.insert(0, "written before C existed: 中文 😀")
    bob.wait_text("written before C existed: 中文 😀")

    c = start_server("c", redis_url=redis_server.url)
    carol = node_peers(c.ws_url, DOC)
    carol.wait_synced()
    assert carol.text == "written before C existed: 中文 😀"
    carol.insert(0, "C: ")
    expected = "C: written before C existed: 中文 😀"
    alice.wait_text(expected)
    bob.wait_text(expected)

    # A dies without a goodbye; B's client keeps writing; A comes back on the same port.
    a.kill()
    bob.insert(utf16(expected, len(expected)), " (while A was down 𝒳)")
    expected += " (while A was down 𝒳)"
    carol.wait_text(expected)
    a.start()
    alice.wait_text(expected)  # alice reconnects by herself and A serves her B's edit
    fresh = node_peers(a.ws_url, DOC)
    fresh.wait_synced()
    assert fresh.text == expected
    fresh.insert(0, "A again: ")
    for client in (alice, bob, carol):
        client.wait_text("A again: " + expected)


def _names(peer) -> set[str]:
    return {state["user"]["name"] for state in peer.call("awareness")["states"].values() if "user" in state}


def test_awareness_crosses_instances(instances, node_peers, py_clients):
    a, b = instances
    # B has the document loaded (and so listens for it) before alice says who she is on A.
    bob = node_peers(b.ws_url, DOC, name="bob")
    py = py_clients(b.ws_url, DOC, name="py")
    bob.wait_synced()
    py.wait_synced()
    alice = node_peers(a.ws_url, DOC, name="alice")
    alice.wait_synced()
    alice_id = str(alice.call("awareness")["clientId"])

    wait_until(lambda: _names(bob) == {"alice", "bob", "py"}, 10, "bob (on B) to see alice (on A)")
    py.wait_awareness(lambda states: states.get(int(alice_id)) == {"user": {"name": "alice", "role": "editor"}})
    alice.call("set_awareness", field="cursor", value={"anchor": "x", "head": 7})
    wait_until(
        lambda: bob.call("awareness")["states"][alice_id].get("cursor") == {"anchor": "x", "head": 7},
        10,
        "alice's cursor to reach B",
    )
    # The other way: bob moves his cursor, alice on A sees him.
    bob.call("set_awareness", field="cursor", value={"anchor": "y", "head": 1})
    wait_until(lambda: "bob" in _names(alice), 10, "alice (on A) to see bob (on B)")

    # Leaving, as well as arriving, is news on the other instance: a client that says goodbye...
    alice.disconnect()
    wait_until(lambda: _names(bob) == {"bob", "py"}, 10, "alice to disappear for bob (on B)")
    py.wait_awareness(lambda states: int(alice_id) not in states)


def test_a_vanished_client_disappears_on_other_instances(instances, node_peers):
    """...and one that cannot (its process died): its instance announces the departure for it."""
    a, b = instances
    bob = node_peers(b.ws_url, DOC, name="bob")
    bob.wait_synced()
    carol = node_peers(a.ws_url, DOC, name="carol")
    carol.wait_synced()
    wait_until(lambda: _names(bob) == {"bob", "carol"}, 10, "bob (on B) to see carol (on A)")
    carol.proc.kill()
    carol.proc.wait(5)
    # Stock clients drop a state not renewed for 30 s by themselves; 3 s is well before that.
    wait_until(lambda: _names(bob) == {"bob"}, 3, "carol to disappear for bob (on B)")


def test_a_client_joining_on_another_instance_sees_who_is_already_there(instances, node_peers):
    a, b = instances
    alice = node_peers(a.ws_url, DOC, name="alice")
    alice.wait_synced()
    bob = node_peers(b.ws_url, DOC, name="bob")
    bob.wait_synced()
    # The y-websocket reference server shows a newcomer everyone present at once; 3 s is
    # well under the 15 s after which alice's client would repeat her state by itself.
    wait_until(lambda: _names(bob) == {"alice", "bob"}, 3, "bob (on B) to see alice (on A)")
