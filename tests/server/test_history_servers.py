"""History through real servers: a SIGKILL loses no entry of a broadcast update; two servers on one Redis
record each update once, under the instance that took it.

The stores are read directly (the versions API is another module's), with the same code the server uses.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
import redis.asyncio as aioredis

from server.history.rebuild import text_at
from server.stores.redis import RedisStore
from server.stores.sqlite import SqliteStore
from tests.server.test_durability import _closes, stalled_store
from tests.support.processes import wait_until

DOC = "recorded"
KEYSTROKES = ["a", "😀", "b", "中", "e\u0301", " ", "z"]


async def _read_history(server, redis_url: str | None):
    """(entries, text rebuilt at the newest entry), read from the store the server wrote."""
    if redis_url:
        store = RedisStore(aioredis.from_url(redis_url), "redraft", "reader")
    else:
        store = SqliteStore(server.data_dir / "redraft.sqlite3")
    await store.start()
    try:
        entries = await store.history(DOC)
        return entries, (await text_at(store, DOC, entries[-1].seq) if entries else "")
    finally:
        await store.close()


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_sigkill_loses_no_history_entry_of_a_broadcast_update(store, request, start_server, node_peers):
    seed = int(os.environ.get("REDRAFT_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed} (rerun with REDRAFT_TEST_SEED={seed})")
    rng = random.Random(seed)
    redis_url = request.getfixturevalue("redis_server").url if store == "redis" else None
    server = start_server(redis_url=redis_url, extra_args=("--compact-min-bytes", "2000"))
    for round_ in range(2):
        writer = node_peers(server.ws_url, DOC, name="Writer")
        observer = node_peers(server.ws_url, DOC)
        writer.wait_synced()
        observer.wait_synced()
        start = len(observer.text)
        writer.call("start_typing", pieces=KEYSTROKES, intervalMs=6)
        wait_until(lambda: len(observer.text) > start + 20, 10, "the observer to see typing")
        time.sleep(rng.uniform(0.05, 0.4))
        if round_ % 2:
            with stalled_store(server, redis_url):  # appends hang: applied, not durable, not broadcast
                time.sleep(rng.uniform(0.1, 0.3))
                server.kill()
        else:
            server.kill()
        wait_until(lambda: _closes(observer), 10, "the observer to notice the server is gone")
        seen = observer.text  # every update the server broadcast before dying
        writer.call("stop_typing")
        writer.close()
        observer.close()

        entries, recorded = asyncio.run(_read_history(server, redis_url))
        assert recorded.startswith(seen), f"seed={seed} round={round_}: history lost a broadcast update"
        assert {e.author.name for e in entries} == {"Writer"} and not any(e.author.verified for e in entries)
        server.start()
        fresh = node_peers(server.ws_url, DOC)
        fresh.wait_synced()
        assert fresh.text == recorded, f"seed={seed}: the log and the history disagree"  # same atomic append
        fresh.close()


def test_two_servers_on_one_redis_record_each_update_once(redis_server, start_server, node_peers):
    a = start_server("a", redis_url=redis_server.url)
    b = start_server("b", redis_url=redis_server.url)
    ada, bob = node_peers(a.ws_url, DOC, name="Ada"), node_peers(b.ws_url, DOC, name="Bob")
    ada.wait_synced()
    bob.wait_synced()
    expected = ""
    for i in range(12):
        typist, other = (ada, bob) if i % 2 == 0 else (bob, ada)
        expected = typist.insert(len(expected), f"{'ab'[i % 2]}{i} ")
        other.wait_text(expected)  # through the other server: it received, applied and relayed it
    entries, recorded = asyncio.run(_read_history(a, redis_server.url))
    assert recorded == expected
    assert [e.seq for e in entries] == list(range(1, 13))  # one entry per update: none added by the fan-out
    instance_of = {}
    for entry in entries:
        instance_of.setdefault(entry.author.name, set()).add(entry.connection.split(":")[0])
    assert sorted(instance_of) == ["Ada", "Bob"]
    assert len(instance_of["Ada"]) == len(instance_of["Bob"]) == 1 and instance_of["Ada"] != instance_of["Bob"]
