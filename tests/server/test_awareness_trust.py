"""Hostile collaborators in awareness (issue 14 items 1-4 and 8): what everyone else sees when a client lies.

The attacker is a raw websocket whose frames are written here byte by byte (varuints and JSON), not with
the server's encoder; the people are stock Yjs clients (Node, y-websocket) and what the test asserts is
what their awareness holds. Waiting for a marker the attacker sends after its forgeries proves the server
has handled them (one connection's frames are handled in order), so no test sleeps to prove a negative.
"""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from server.auth import mint_token
from server.awareness_trust import AI_CLIENT_ID_MIN
from tests.server.test_redrafts import api, passage_range, shared_doc, start_engine_server, wait_status
from tests.support.processes import wait_until
from tests.support.pyclient import Decoder, write_bytes, write_uint
from tests.support.raw import open_raw

SECRET = "trust-secret-" + "s" * 20
DOC = "trust"
MESSAGE_AWARENESS, MESSAGE_QUERY_AWARENESS = 1, 3
MALLORY, MALLORY_2 = 3_000_001, 3_000_002
CSS = "red;position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:99999;background-image:url(http://127.0.0.1:9)"


def awareness_update(*entries) -> bytes:
    """An awareness update from (client id, clock, state) triples; a state of None is a removal."""
    body = write_uint(len(entries))
    for client_id, clock, state in entries:
        body += write_uint(client_id) + write_uint(clock) + write_bytes(json.dumps(state).encode())
    return body


def awareness_frame(*entries) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + write_bytes(awareness_update(*entries))


def token(role: str) -> str:
    return mint_token(SECRET, DOC, role, ttl_s=3600)


def person(server, node_peers, name: str, role: str = "edit", doc: str = DOC):
    peer = node_peers(server.ws_url, doc, params={"token": token(role)} if role else {}, name=name)
    peer.wait_synced()
    return peer


def client_id(peer) -> int:
    return peer.call("awareness")["clientId"]


def others(peer) -> dict[int, dict]:
    """The states a stock client holds for everyone but itself."""
    reply = peer.call("awareness")
    return {int(cid): state for cid, state in reply["states"].items() if int(cid) != reply["clientId"]}


def own_state(peer) -> dict:
    reply = peer.call("awareness")
    return reply["states"][str(reply["clientId"])]


def seen(name: str, role: str = "editor", **fields) -> dict:
    return {"user": {"name": name, **fields, "role": role}}


def refusals(server) -> dict[str, float]:
    counts = {}
    for line in httpx.get(server.http_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith('redraft_refusals_total{reason="'):
            reason = line.split('"')[1]
            counts[reason] = float(line.split()[-1])
    return counts


def snapshot_ids(server, doc: str = DOC, role: str | None = "read") -> list[int]:
    """The client ids a late joiner is told about (it asks with a query-awareness message)."""
    with open_raw(server.ws_url, doc, token(role) if role else None) as ws:
        ws.send(bytes((MESSAGE_QUERY_AWARENESS,)))
        while True:
            frame = ws.recv(timeout=5)
            if frame[0] == MESSAGE_AWARENESS:
                decoder = Decoder(Decoder(frame[1:]).bytes())
                ids = []
                for _ in range(decoder.uint()):
                    ids.append(decoder.uint())
                    decoder.uint()
                    decoder.bytes()
                return ids


@pytest.fixture
def server(start_server):
    return start_server(extra_args=("--secret", SECRET))


def test_a_read_only_client_cannot_speak_for_alice_nor_remove_her(server, node_peers):
    alice = person(server, node_peers, "alice")
    olga = person(server, node_peers, "olga")
    alice_id, olga_id = client_id(alice), client_id(olga)
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 10, "olga to see alice")

    with open_raw(server.ws_url, DOC, token("read")) as mallory:
        mallory.send(awareness_frame((MALLORY, 1, {"user": {"name": "mallory"}}),
                                     (alice_id, 10**6, {"user": {"name": "EVIL-as-Alice"}})))
        mallory.send(awareness_frame((alice_id, 10**6 + 1, None)))
        mallory.send(awareness_frame((MALLORY, 2, {"user": {"name": "mallory", "role": "editor"}, "done": 1})))
        wait_until(lambda: others(olga).get(MALLORY) == {"user": {"name": "mallory", "role": "viewer"}, "done": 1},
                   10, "mallory's marker")
        marker = {"user": {"name": "mallory", "role": "viewer"}, "done": 1}
        assert others(olga) == {alice_id: seen("alice"), MALLORY: marker}
        assert own_state(alice) == {"user": {"name": "alice"}}  # alice's own client did not adopt anything
    wait_until(lambda: MALLORY not in others(olga), 10, "mallory to leave")
    assert others(olga) == {alice_id: seen("alice")}  # her leaving removed her own id only
    assert sorted(snapshot_ids(server)) == sorted([alice_id, olga_id])
    assert refusals(server)["awareness_foreign_id"] == 2


def test_no_clock_can_hide_a_client_that_comes_back(server, node_peers):
    alice = person(server, node_peers, "alice")
    olga = person(server, node_peers, "olga")
    alice_id, olga_id = client_id(alice), client_id(olga)
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 10, "olga to see alice")

    # Alice is away; someone takes her id with a clock of 10^15 (it is theirs while they hold it) and leaves:
    # the removal goes out at 10^15 + 1, yet alice coming back with her own small clock is shown at once.
    alice.disconnect()
    wait_until(lambda: alice_id not in others(olga), 10, "alice to leave")
    with open_raw(server.ws_url, DOC, token("read")) as squatter:
        squatter.send(awareness_frame((alice_id, 10**15, {"user": {"name": "squatter"}})))
        wait_until(lambda: others(olga).get(alice_id) == seen("squatter", "viewer"), 10, "the squatter")
    wait_until(lambda: alice_id not in others(olga), 10, "the squatter to leave")
    alice.reconnect()
    # Well before her client's next renewal (15 s): the server relays her state above the removal's clock.
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 5, "alice to be back for olga")
    wait_until(lambda: others(alice).get(olga_id) == seen("olga"), 5, "olga to be back for alice")

    # Alice away again, and this time back while the squatter holds her id: she is kept out (and her client
    # never hears the squatter's state as its own), then shown the moment the squatter leaves.
    alice.disconnect()
    wait_until(lambda: alice_id not in others(olga), 10, "alice to leave")
    with open_raw(server.ws_url, DOC, token("read")) as squatter:
        squatter.send(awareness_frame((alice_id, 10**15 + 10, {"user": {"name": "squatter"}})))
        wait_until(lambda: others(olga).get(alice_id) == seen("squatter", "viewer"), 10, "the squatter")
        alice.reconnect()
        wait_until(lambda: olga_id in others(alice), 10, "alice to be told who is here")
        wait_until(lambda: refusals(server).get("awareness_id_taken", 0) >= 1, 10, "alice's state to be kept out")
        assert own_state(alice) == {"user": {"name": "alice"}}
        assert alice_id not in others(alice)
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 5, "alice to be shown once the squatter left")


def test_states_that_carry_css_or_claim_the_ai_are_dropped_and_the_flood_is_not_kept(server, node_peers):
    alice = person(server, node_peers, "alice")
    olga = person(server, node_peers, "olga")
    alice_id, olga_id = client_id(alice), client_id(olga)
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 10, "olga to see alice")
    fake_ai = {"user": {"name": "Redraft AI", "color": "#7c3aed", "ai": True},
               "redrafts": [{"id": "fake", "status": "suggested", "text": "pwned"}]}

    with open_raw(server.ws_url, DOC, token("edit")) as mallory:
        mallory.send(awareness_frame((MALLORY, 1, {"user": {"name": "m", "color": CSS}})))
        mallory.send(awareness_frame((MALLORY, 2, {"user": {"name": "m", "colorLight": "#d1495b33;color:red"}})))
        mallory.send(awareness_frame((MALLORY, 3, {"user": {"name": "m", "color": ["#d1495b;background:url(x)"]}})))
        mallory.send(awareness_frame((AI_CLIENT_ID_MIN + 5, 1, fake_ai)))
        # 30,000 ids in one message, then 900 more in messages of ten beside its own.
        mallory.send(awareness_frame(*[(MALLORY + k, 1, {}) for k in range(30_000)]))
        for frame_index in range(100):
            mallory.send(awareness_frame((MALLORY, 4 + frame_index, {"user": {"name": "m", "ai": True}}),
                                         *[(10_000_000 + frame_index * 10 + k, 1, {}) for k in range(9)]))
        mallory.send(awareness_frame((MALLORY, 200, {"user": {"name": "m", "color": "#d1495b", "ai": True}})))
        wait_until(lambda: others(olga).get(MALLORY) == seen("m", color="#d1495b"), 10, "mallory's last state")
        assert others(olga) == {alice_id: seen("alice"), MALLORY: seen("m", color="#d1495b")}
        assert sorted(snapshot_ids(server)) == sorted([alice_id, olga_id, MALLORY])
        counts = refusals(server)
        assert counts["awareness_invalid"] == 3
        assert counts["awareness_reserved_id"] == 1
        assert counts["awareness_too_many"] == 1
        assert counts["awareness_foreign_id"] == 900
    # The server still serves everyone.
    alice.insert(0, "still here")
    olga.wait_text("still here")
    wait_until(lambda: others(olga) == {alice_id: seen("alice")}, 10, "mallory to leave")


def test_a_client_cannot_silence_the_ai_or_pose_as_it(start_server, node_peers):
    server = start_engine_server(start_server)
    a, b = shared_doc(node_peers, server, "ai-doc")

    def ai_ids() -> list[int]:
        return [cid for cid in others(b) if cid >= AI_CLIENT_ID_MIN]

    first = httpx.post(api(server, "ai-doc"), json={**passage_range(a), "steps": 12, "seed": 3}).json()
    ai_id = wait_until(lambda: ai_ids(), 60, "the AI peer's state")[0]
    assert wait_status(server, "ai-doc", first["id"], ("done", "failed"))["status"] == "done"

    with open_raw(server.ws_url, "ai-doc") as mallory:
        mallory.send(awareness_frame((MALLORY, 1, {"user": {"name": "m"}})))
        mallory.send(awareness_frame((ai_id, 10**15, None)))
        mallory.send(awareness_frame((ai_id + 1, 1, {"user": {"name": "Redraft AI", "ai": True},
                                                     "redrafts": [{"id": "fake", "status": "suggested"}]})))
        mallory.send(awareness_frame((MALLORY, 2, {"user": {"name": "m"}, "done": 1})))
        wait_until(lambda: others(b).get(MALLORY) == {"user": {"name": "m", "role": "editor"}, "done": 1}, 10,
                   "mallory's marker")
        assert ai_ids() == [ai_id]
        assert refusals(server)["awareness_reserved_id"] == 2

        # The AI's next redraft still reaches everyone, preview and end.
        text = a.text
        second = httpx.post(api(server, "ai-doc"), json={**passage_range(a, text, text[: text.index(".") + 1]),
                                                          "steps": 12, "seed": 4}).json()
        assert wait_status(server, "ai-doc", second["id"], ("done", "failed"))["status"] == "done"
        for peer in (a, b):
            def entries():
                log = [entry for entry in peer.ai_log() if entry["id"] == second["id"]]
                return log if log and log[-1]["status"] == "done" else None

            log = wait_until(entries, 10, "the second redraft's end in awareness")
            assert any(entry["status"] == "running" for entry in log)
            assert all(entry["id"] != "fake" for entry in peer.ai_log())


@pytest.fixture
def instances(redis_server, start_server):
    args = ("--secret", SECRET)
    return (start_server("a", redis_url=redis_server.url, extra_args=args),
            start_server("b", redis_url=redis_server.url, extra_args=args))


def test_the_same_rules_hold_across_instances(instances, redis_server, node_peers):
    a, b = instances
    alice = person(b, node_peers, "alice")
    olga = person(a, node_peers, "olga")
    alice_id, olga_id = client_id(alice), client_id(olga)
    wait_until(lambda: others(olga).get(alice_id) == seen("alice"), 10, "olga (on A) to see alice (on B)")
    wait_until(lambda: others(alice).get(olga_id) == seen("olga"), 10, "alice (on B) to see olga (on A)")

    # A connection on A cannot take the id of a client that B shows, even as its first word.
    with open_raw(a.ws_url, DOC, token("read")) as squatter:
        squatter.send(awareness_frame((alice_id, 10**6, {"user": {"name": "EVIL-as-Alice"}})))
        wait_until(lambda: refusals(a).get("awareness_id_taken") == 1, 10, "A to refuse the squatter")
    with open_raw(a.ws_url, DOC, token("read")) as mallory:
        mallory.send(awareness_frame((MALLORY, 1, {"user": {"name": "m"}}),
                                     (alice_id, 10**6, {"user": {"name": "EVIL-as-Alice"}})))
        mallory.send(awareness_frame((alice_id, 10**6 + 1, None),
                                     (AI_CLIENT_ID_MIN + 1, 1, {"user": {"name": "Redraft AI"}, "redrafts": []})))
        mallory.send(awareness_frame((MALLORY, 2, {"user": {"name": "m", "color": CSS}})))
        mallory.send(awareness_frame(*[(MALLORY + k, 1, {}) for k in range(30_000)]))
        mallory.send(awareness_frame((MALLORY, 3, {"user": {"name": "m", "color": "#00798c"}})))
        marker = seen("m", "viewer", color="#00798c")
        wait_until(lambda: others(alice).get(MALLORY) == marker, 10, "mallory's last state on B")
        wait_until(lambda: others(olga).get(MALLORY) == marker, 10, "mallory's last state on A")
        assert others(alice) == {olga_id: seen("olga"), MALLORY: marker}
        assert others(olga) == {alice_id: seen("alice"), MALLORY: marker}
        assert own_state(alice) == {"user": {"name": "alice"}}
        assert sorted(snapshot_ids(b)) == sorted([alice_id, olga_id, MALLORY])
    for observer in (alice, olga):
        wait_until(lambda: MALLORY not in others(observer), 10, "mallory to leave")
    assert others(olga) == {alice_id: seen("alice")} and others(alice) == {olga_id: seen("olga")}
    counts = refusals(a)
    assert (counts["awareness_foreign_id"], counts["awareness_reserved_id"], counts["awareness_invalid"],
            counts["awareness_too_many"]) == (2, 1, 1, 1)

    # What comes through Redis is checked again: a message as another instance would publish it (a rogue one).
    rogue = [(MALLORY_2, 1, {"user": {"name": "x", "color": CSS, "role": "editor"}}),
             (MALLORY_2 + 1, 1, {"user": {"name": "no role"}}),
             (MALLORY_2 + 2, 1, {"user": {"name": "big", "role": "editor"}, "pad": "x" * 5000}),
             (MALLORY_2 + 3, 1, {"user": {"name": "fine", "role": "viewer"}})]
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.publish(f"redraft:awareness:{DOC}", b"rogue\0u" + awareness_update(*rogue))
    finally:
        client.close()
    for observer in (alice, olga):
        wait_until(lambda: MALLORY_2 + 3 in others(observer), 10, "the rogue's acceptable state")
    assert others(olga) == {alice_id: seen("alice"), MALLORY_2 + 3: seen("fine", "viewer")}
    assert others(alice) == {olga_id: seen("olga"), MALLORY_2 + 3: seen("fine", "viewer")}
    for instance in (a, b):
        counts = refusals(instance)
        assert (counts["remote_awareness_invalid"], counts["remote_awareness_too_large"]) == (2, 1)
