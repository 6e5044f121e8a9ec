"""A server killed with SIGKILL mid-session serves, once restarted, every update it had broadcast.

One client types steadily; another watches, so its text is exactly what the
server had broadcast when it died. After the restart the document is read by a
fresh client that never saw it before: the old clients are closed first, since
on reconnecting they would hand the server their own copy and hide any loss.

A store append takes well under a millisecond, so a kill at a random moment
rarely lands between an append and its broadcast; every other round therefore
stalls the store first (another SQLite writer holds the lock, or Redis pauses
writes) and kills the server while its appends hang: a server that broadcast
before its append was durable fails there every time. Compaction runs every few
dozen updates, so some kills land while a snapshot replaces the log.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time

import pytest
import redis

from tests.support.processes import wait_until

DOC = "durable"
# Non-BMP, CJK and combining marks among the keystrokes, so that lengths disagree everywhere.
KEYSTROKES = ["a", "😀", "b", "中", "e\u0301", "𝒳", " ", "文", "z"]
NUM_ROUNDS = 3


@contextlib.contextmanager
def stalled_store(server, redis_url: str | None):
    """Makes every append of the server's store hang until the block exits."""
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        try:
            yield
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
            client.close()
    else:
        blocker = sqlite3.connect(server.data_dir / "redraft.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the write lock: the server's appends wait on it
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def _closes(peer) -> list[int | None]:
    return [event["code"] for event in peer.events() if event["type"] == "close"]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_sigkill_loses_nothing_that_was_broadcast(store, request, start_server, node_peers):
    seed = int(os.environ.get("REDRAFT_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed} (rerun with REDRAFT_TEST_SEED={seed})")
    rng = random.Random(seed)
    redis_url = request.getfixturevalue("redis_server").url if store == "redis" else None
    server = start_server(redis_url=redis_url, extra_args=("--compact-min-bytes", "2000"))

    stored = ""
    for round_ in range(NUM_ROUNDS):
        writer = node_peers(server.ws_url, DOC)
        observer = node_peers(server.ws_url, DOC)
        writer.wait_synced()
        observer.wait_synced()
        assert writer.text == stored and observer.text == stored
        # ~170 keystrokes a second: under the per-connection rate limit (200/s sustained).
        writer.call("start_typing", pieces=KEYSTROKES, intervalMs=6)
        # Some typing reaches the observer before the kill, at an arbitrary moment after that.
        wait_until(lambda: len(observer.text) > len(stored) + 20, 10, "the observer to see typing")
        time.sleep(rng.uniform(0.05, 0.6))
        if round_ % 2:
            with stalled_store(server, redis_url):
                # Keystrokes pile up in the room, applied but not durable, hence not broadcast.
                time.sleep(rng.uniform(0.1, 0.4))
                server.kill()
        else:
            server.kill()

        wait_until(lambda: _closes(observer), 10, "the observer to notice the server is gone")
        seen = observer.text  # every frame the server sent before dying is in it
        typed = writer.call("stop_typing")["text"]  # the writer kept typing into its own copy
        assert not [code for code in _closes(writer) + _closes(observer) if code and 4000 <= code < 5000], seed
        writer.close()
        observer.close()

        server.start()
        fresh = node_peers(server.ws_url, DOC)
        fresh.wait_synced()
        stored = fresh.text
        fresh.close()
        context = f"seed={seed} round={round_}: saw {len(seen)}, stored {len(stored)}, typed {len(typed)} chars"
        assert stored.startswith(seen), context  # nothing broadcast was lost...
        assert typed.startswith(stored), context  # ...and nothing else appeared
