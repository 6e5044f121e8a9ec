"""Version history with several server processes on one real redis-server: the same from every replica.

Each instance records its own clients' entries in the same atomic step as the log append (a Lua script), so
the history is one per document whichever replica lists it; an acknowledged update (one another replica or
client has seen) always has its entry, also when its server was SIGKILLed mid-write; and a restore asked of
one replica is an ordinary CRDT edit that the clients of the other see live. Two replicas with the document
loaded both run retention on it, each on its own clock: their folds must not undo each other's.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from pycrdt import Doc, Text

from server.history.entry import Author, Change, HistoryEntry, Origin
from server.history.rebuild import text_at
from server.history.retention import DAY_S, apply_retention
from server.stores.redis import RedisStore
from tests.server.test_durability import stalled_store
from tests.support.processes import wait_until

DOC = "history-replicas"
KEYSTROKES = ["a", "😀", "b", "中", "e\u0301", "𝒳", " ", "文", "z"]  # lengths disagree in every unit


def list_versions(server, doc: str = DOC, limit: int = 3) -> list[dict]:
    """Every version, newest first, page by page as a client pages them."""
    versions, before = [], None
    for _ in range(1000):
        params = {"limit": limit, **({"before": before} if before is not None else {})}
        response = httpx.get(f"{server.http_url}/api/docs/{doc}/versions", params=params, timeout=10)
        assert response.status_code == 200, response.text
        page = response.json()
        versions += page["versions"]
        before = page["next"]
        if before is None:
            return versions
    raise AssertionError("the version list never ended")


def version_text(server, version_id: int, doc: str = DOC) -> str:
    response = httpx.get(f"{server.http_url}/api/docs/{doc}/versions/{version_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def _names(peer) -> set[str]:
    states = peer.call("awareness")["states"].values()
    return {state["user"]["name"] for state in states if "name" in state.get("user", {})}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def replicas(redis_server, start_server):
    return start_server("a", redis_url=redis_server.url), start_server("b", redis_url=redis_server.url)


def test_two_replicas_list_the_same_history(replicas, node_peers):
    a, b = replicas
    alice = node_peers(a.ws_url, DOC, name="alice")
    bob = node_peers(b.ws_url, DOC, name="bob")
    alice.wait_synced()
    bob.wait_synced()
    # Each server knows its client's name (awareness) before that client types: seen from the other side.
    wait_until(lambda: _names(bob) == {"alice", "bob"}, 10, "bob (on B) to see alice (on A)")
    wait_until(lambda: _names(alice) == {"alice", "bob"}, 10, "alice (on A) to see bob (on B)")

    expected = ""
    for turn in range(3):  # alice, bob, alice...: every turn is a version of its own (another connection)
        for writer, reader in ((alice, bob), (bob, alice)):
            piece = f"[{turn}:{'alice' if writer is alice else 'bob'} 😀]"
            writer.insert(len(expected.encode("utf-16-le")) // 2, piece)
            expected += piece
            reader.wait_text(expected)

    from_a, from_b = list_versions(a), list_versions(b)
    assert from_a == from_b
    assert [(v["kind"], v["author"]["name"], v["author"]["verified"]) for v in from_a] == [
        ("typing", name, False) for name in ["bob", "alice"] * 3
    ]
    assert all(v["entries"] == 1 and v["authors"] == [v["author"]] for v in from_a)
    ids = [v["id"] for v in from_a]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    # Every version reads the same from both replicas, and the newest is the text everyone has.
    texts = [version_text(a, version_id) for version_id in ids]
    assert texts == [version_text(b, version_id) for version_id in ids]
    assert texts[0] == expected
    assert texts[-1] == "[0:alice 😀]"


@pytest.mark.parametrize("stall", [False, True], ids=["typing", "stalled-append"])
def test_a_sigkill_mid_write_loses_no_acknowledged_entry(stall, replicas, redis_server, start_server, node_peers):
    seed = int(os.environ.get("REDRAFT_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed} (rerun with REDRAFT_TEST_SEED={seed})")
    rng = random.Random(seed)
    a, b = replicas
    writer = node_peers(a.ws_url, DOC, name="writer")
    near = node_peers(a.ws_url, DOC)  # sees what A broadcast (after its append)
    far = node_peers(b.ws_url, DOC)  # sees what reached the shared log (appended with its history entry)
    for peer in (writer, near, far):
        peer.wait_synced()
    wait_until(lambda: "writer" in _names(far), 10, "the writer's name to reach B")

    writer.call("start_typing", pieces=KEYSTROKES, intervalMs=6)  # ~170/s: under the rate limit
    wait_until(lambda: len(far.text) > 20, 10, "B's client to see typing")
    time.sleep(rng.uniform(0.05, 0.5))
    if stall:
        with stalled_store(a, redis_server.url):
            time.sleep(rng.uniform(0.1, 0.3))  # keystrokes pile up in A's room: applied, not acknowledged
            a.kill()
    else:
        a.kill()
    typed = writer.call("stop_typing")["text"]
    wait_until(lambda: [e for e in near.events() if e["type"] == "close"], 10, "A's client to notice A is gone")
    seen = [near.text, far.text]  # every frame each was sent: what A broadcast, what reached the shared log
    for peer in (writer, near, far):
        peer.close()

    fresh = node_peers(b.ws_url, DOC)
    fresh.wait_synced()
    stored = fresh.text
    versions = list_versions(b, limit=50)
    context = f"seed={seed}: seen {[len(s) for s in seen]}, stored {len(stored)}, typed {len(typed)} chars"
    assert all(stored.startswith(text) for text in seen), context  # nothing acknowledged was lost...
    assert typed.startswith(stored), context  # ...and nothing else appeared
    # ...and the history holds every update the log holds: its newest version is the stored text.
    assert version_text(b, versions[0]["id"]) == stored, context
    assert {(v["kind"], v["author"]["name"], v["author"]["verified"]) for v in versions} == {
        ("typing", "writer", False)
    }, context
    # The killed replica, restarted, lists that same history.
    a.start()
    assert list_versions(a, limit=50) == versions


def test_a_restore_on_one_replica_is_seen_live_on_the_other(replicas, node_peers):
    a, b = replicas
    alice = node_peers(a.ws_url, DOC, name="alice")
    bob = node_peers(b.ws_url, DOC, name="bob")
    alice.wait_synced()
    bob.wait_synced()
    first = "The first draft, 中文 😀."
    alice.insert(0, first)
    bob.wait_text(first)
    bob.delete(0, len(first.encode("utf-16-le")) // 2)
    bob.insert(0, "Bob's take instead.")
    alice.wait_text("Bob's take instead.")
    versions = list_versions(b)
    assert [v["author"]["name"] for v in versions] == ["bob", "alice"]
    alices = versions[1]["id"]

    response = httpx.post(f"{b.http_url}/api/docs/{DOC}/versions/{alices}/restore", json={}, timeout=10)
    assert response.status_code == 200, response.text
    alice.wait_text(first)  # on the other replica, live
    bob.wait_text(first)

    from_a = list_versions(a)
    assert from_a == list_versions(b)
    restore = from_a[0]
    assert (restore["kind"], restore["restored"]) == ("restore", alices)
    assert version_text(a, restore["id"]) == first
    # A client joining on A afterwards reads the restored text, like everyone else.
    late = node_peers(a.ws_url, DOC)
    late.wait_synced()
    assert late.text == first


class FoldGate:
    """A replica's store whose `fold_history` waits at a gate: what it read is stale by the time it folds."""

    def __init__(self, store):
        self.store = store
        self.arrived = asyncio.Event()
        self.opened = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def fold_history(self, *args, **kwargs):
        self.arrived.set()
        await self.opened.wait()
        return await self.store.fold_history(*args, **kwargs)


@pytest.mark.anyio
async def test_two_replicas_folding_one_history_at_once_lose_no_update(redis_server):
    """Both replicas run retention on a document they both have loaded, each with its own clock: the hourly
    horizon falls between e1 and e2 for B, after e10 for A. A folds e1..e10 into seq 10 while B, having read
    e2..e11 as they were, folds them: B's fold must not delete A's merged entry (and e1 with it)."""
    a = RedisStore(aioredis.Redis.from_url(redis_server.url), "redraft", "a")
    b = RedisStore(aioredis.Redis.from_url(redis_server.url), "redraft", "b")
    for store in (a, b):
        await store.start()
    try:
        await _fold_at_once(a, b)
    finally:
        for store in (a, b):
            await store.close()


async def _fold_at_once(a, b) -> None:
    source = Doc()
    text = source.get("content", type=Text)
    start = 1_700_000_000 - 1_700_000_000 % DAY_S + 12 * 3600 + 600  # 12:10 UTC: one hour, one day
    change = Change(Author("ada"), Origin("typing"), "a:1")
    for i in range(11):
        before = source.get_state()
        text.insert(len(text), f"e{i + 1} ")
        update = source.get_update(before)
        await a.append(DOC, [update], history=[HistoryEntry.draft(update, change, start + i)])
    expected = str(text)

    gated = FoldGate(b)
    with anyio.fail_after(20):
        late = asyncio.create_task(apply_retention(gated, DOC, start + 0.5 + 30 * DAY_S, 7, 30))
        await gated.arrived.wait()  # B read e2..e11 and is about to fold them
        await apply_retention(a, DOC, start + 9.5 + 30 * DAY_S, 7, 30)  # A folds e1..e10 meanwhile
        gated.opened.set()
        await late
        entries = await a.history(DOC)
        assert await text_at(a, DOC, entries[-1].seq) == expected, [(e.seq, e.origin.kind) for e in entries]
