"""Both stores: append, load, compaction into a snapshot, and what survives a reopen."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time

import pytest
from pycrdt import Doc, Text


@pytest.fixture
def anyio_backend():
    return "asyncio"


def edits(seed: int, count: int) -> tuple[list[bytes], str]:
    """`count` incremental updates of one text, and the text they make."""
    rng = random.Random(seed)
    doc = Doc()
    text = doc.get("content", type=Text)
    updates = []
    for _ in range(count):
        before = doc.get_state()
        chars = str(text)
        if len(chars) > 5 and rng.random() < 0.3:
            start = rng.randrange(len(chars) - 3)
            del text[utf8_offset(chars, start) : utf8_offset(chars, start + 3)]
        else:
            text.insert(utf8_offset(chars, rng.randrange(len(chars) + 1)), rng.choice(["ab", "😀", "é ", "中文"]))
        updates.append(doc.get_update(before))
    return updates, str(text)


def utf8_offset(chars: str, index: int) -> int:
    """pycrdt 0.14 indexes text by UTF-8 byte, not by character."""
    return len(chars[:index].encode())


def replay(updates: list[bytes]) -> str:
    doc = Doc()
    text = doc.get("content", type=Text)
    for update in updates:
        doc.apply_update(update)
    return str(text)


@pytest.mark.anyio
async def test_append_load_and_reopen(make_store):
    updates, expected = edits(seed=1, count=60)
    store = await make_store()
    for i in range(0, 60, 7):
        await store.append("doc", updates[i : i + 7])
    loaded = await store.load("doc")
    assert replay(loaded.updates) == expected
    assert loaded.size_bytes == sum(len(u) for u in updates)
    assert (await store.load("another")).updates == []
    reopened = await make_store()
    assert replay((await reopened.load("doc")).updates) == expected


def snapshot_of(updates: list[bytes]) -> bytes:
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


@pytest.mark.anyio
async def test_compaction_replaces_the_log_up_to_its_cursor(make_store):
    updates, expected = edits(seed=2, count=300)
    store = await make_store()
    upto = await store.append("doc", updates[:200])
    await store.append("doc", updates[200:250])  # after the snapshot's cursor: must stay
    await store.compact("doc", snapshot_of(updates[:200]), upto)
    loaded = await store.load("doc")
    assert len(loaded.updates) == 1 + 50
    assert replay(loaded.updates) == replay(updates[:250])
    # A snapshot older than the stored one is ignored, and the newer log stays.
    await store.compact("doc", snapshot_of(updates[:100]), "0" if store.kind == "sqlite" else "0-1")
    assert replay((await store.load("doc")).updates) == replay(updates[:250])
    last = await store.append("doc", updates[250:])
    await store.compact("doc", snapshot_of(updates), last)
    loaded = await store.load("doc")
    assert len(loaded.updates) == 1 and replay(loaded.updates) == expected
    assert loaded.size_bytes == len(loaded.updates[0]) < sum(len(u) for u in updates)
    assert (await make_store()).kind == store.kind  # reopening sees the same
    assert replay((await (await make_store()).load("doc")).updates) == expected


@pytest.mark.anyio
async def test_cursor_moves_with_appends(make_store):
    updates, _ = edits(seed=3, count=3)
    store = await make_store()
    first = await store.append("doc", updates[:1])
    second = await store.append("doc", updates[1:])
    assert (await store.load("doc")).cursor == second != first


@pytest.mark.anyio
async def test_sqlite_commits_concurrent_appends_of_many_documents_together_and_a_bad_one_fails_alone(tmp_path):
    from server.stores.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "group.sqlite3")
    await store.start()
    commits = []
    batch_of = store._commit_appends

    def counting():
        commits.append(len(store._appends))
        return batch_of()

    store._commit_appends = counting
    try:
        per_doc = {f"doc-{i}": edits(seed=i, count=3) for i in range(20)}
        bad = store.append("bad", [object()])  # sqlite cannot store it: that append fails
        results = await asyncio.gather(
            bad, *(store.append(doc, [update]) for doc, (updates, _) in per_doc.items() for update in updates),
            return_exceptions=True,
        )
        assert isinstance(results[0], Exception)  # the unbindable update failed, alone
        seqs = [int(seq) for seq in results[1:]]
        assert len(set(seqs)) == len(seqs) == 60
        assert len(commits) < 60 and sum(commits) == 61  # far fewer commits than appends, each append in one
        for doc, (updates, text) in per_doc.items():
            assert replay((await store.load(doc)).updates) == text
        assert (await store.load("bad")).updates == []
    finally:
        await store.close()


@pytest.mark.anyio
async def test_sqlite_log_seqs_go_on_after_a_compaction_deleted_the_last_rows_and_a_reopen(tmp_path):
    """The writer numbers the log itself: a seq is never given twice, or an update appended after a reopen
    could sort at or below the snapshot's seq and never be loaded."""
    from server.stores.sqlite import SqliteStore

    updates, text = edits(seed=5, count=6)
    path = tmp_path / "seqs.sqlite3"
    store = SqliteStore(path)
    await store.start()
    cursors = [int(await store.append("doc", [update])) for update in updates[:3]]
    await store.compact("doc", replay_update(updates[:3]), str(cursors[-1]))  # the log is empty now
    await store.close()
    store = SqliteStore(path)
    await store.start()
    try:
        later = [int(await store.append("doc", [update])) for update in updates[3:]]
        assert cursors == sorted(cursors) and later == sorted(later) and later[0] > cursors[-1]
        loaded = await store.load("doc")
        assert replay(loaded.updates) == text and int(loaded.cursor) == later[-1]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_sqlite_two_processes_appending_to_one_file_catch_up_with_each_others_seqs(tmp_path):
    """Two stores on one file (two processes, or a process started twice): each numbers the log from what it
    last saw, so one's next seq is taken by the other. The append that collides fails inside SQLite, the store
    catches up and retries it: nothing is lost or refused."""
    from server.stores.sqlite import SqliteStore

    path = tmp_path / "shared.sqlite3"
    one, two = SqliteStore(path), SqliteStore(path)
    await one.start()
    await two.start()
    try:
        ones, twos = edits(seed=6, count=4), edits(seed=7, count=4)
        seqs = []
        for a, b in zip(ones[0], twos[0]):
            seqs.append(int(await one.append("one", [a])))
            seqs.append(int(await two.append("two", [b])))  # its first try takes a seq `one` has used
        assert len(set(seqs)) == len(seqs) == 8
        assert replay((await one.load("one")).updates) == ones[1]
        assert replay((await two.load("two")).updates) == twos[1]
    finally:
        await one.close()
        await two.close()


@contextlib.asynccontextmanager
async def watched_sqlite_store(path):
    """(a started SQLite store, the thread each of its commits runs on from now on); closed afterwards."""
    from server.stores.sqlite import SqliteStore

    store = SqliteStore(path)
    await store.start()
    threads, commit = [], store._transaction

    def spy(batch):
        threads.append(threading.current_thread().name)
        return commit(batch)

    store._transaction = spy
    try:
        yield store, threads
    finally:
        await store.close()


@pytest.mark.anyio
async def test_sqlite_commits_small_appends_on_the_loop_and_large_or_waiting_ones_on_the_writer(tmp_path, monkeypatch):
    """Handing a keystroke's commit to the writer thread and back cost more CPU than the commit (issue 21): a small
    batch that finds the writer idle commits on the event loop. A large one, or one that finds the writer busy,
    goes to the writer thread, so the loop never holds up every room for long."""
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "INLINE_LOOP_BUSY", float("inf"))  # however busy the test's loop was
    updates, text = edits(seed=8, count=4)
    async with watched_sqlite_store(tmp_path / "inline.sqlite3") as (store, threads):
        await store.append("doc", updates[:1])
        await store.append("big", [bytes(sqlite.INLINE_COMMIT_BYTES + 1)])
        busy, release = threading.Event(), threading.Event()
        blocked = store._on_writer(lambda: (busy.set(), release.wait(5)))  # a compaction, say
        await asyncio.get_running_loop().run_in_executor(None, busy.wait, 5)
        waiting = asyncio.ensure_future(store.append("doc", updates[1:2]))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # it waits for the writer, as it did before
        release.set()
        await blocked
        await waiting
        await store.append("doc", updates[2:])
        assert threads == ["MainThread", "sqlite-writer_0", "sqlite-writer_0", "MainThread"]
        assert replay((await store.load("doc")).updates) == text


@pytest.mark.anyio
async def test_sqlite_a_lock_held_by_another_process_holds_up_the_append_never_the_loop(tmp_path, monkeypatch):
    """An append on the loop runs without SQLite's busy timeout: meeting another process's write lock it goes
    to the writer thread, which waits for the lock while the loop serves everyone else."""
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "INLINE_LOOP_BUSY", float("inf"))
    path = tmp_path / "locked.sqlite3"
    updates, text = edits(seed=9, count=2)
    async with watched_sqlite_store(path) as (store, threads):
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:  # closed before the store
            other.execute("BEGIN IMMEDIATE")  # another process's write transaction
            append = asyncio.ensure_future(store.append("doc", updates[:1]))
            gaps, last = [], time.monotonic()
            for _ in range(30):  # 0.3 s of the lock held
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()
            assert not append.done() and max(gaps) < 0.2  # the loop went on turning (a blocked one: 0.3 s and more)
            other.execute("COMMIT")
            await append
            await store.append("doc", updates[1:])
            assert threads == ["MainThread", "sqlite-writer_0", "MainThread"]  # tried here, then waited on the thread
            assert replay((await store.load("doc")).updates) == text


@pytest.mark.anyio
async def test_sqlite_a_slow_commit_on_the_loop_sends_the_next_ones_to_the_writer(tmp_path, monkeypatch):
    """A commit that stalled the loop (a disk that stalls) sends the appends that follow to the writer thread
    for INLINE_PAUSE_S; a bad append on the loop fails alone there, as it would on the writer."""
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "INLINE_LOOP_BUSY", float("inf"))
    updates, text = edits(seed=10, count=3)
    async with watched_sqlite_store(tmp_path / "slow.sqlite3") as (store, threads):
        with pytest.raises(sqlite3.Error):
            await store.append("bad", [object()])  # sqlite cannot bind it
        await store.append("doc", updates[:1])
        monkeypatch.setattr(sqlite, "INLINE_COMMIT_SLOW_S", 0.0)  # every commit on the loop is too slow
        await store.append("doc", updates[1:2])
        await store.append("doc", updates[2:])
        assert threads == ["sqlite-writer_0", "MainThread", "MainThread", "sqlite-writer_0"]
        assert replay((await store.load("doc")).updates) == text


@pytest.mark.anyio
async def test_sqlite_commits_on_the_writer_while_the_loop_is_busy(tmp_path, monkeypatch):
    """A loop that is busy most of the time is what limits the rate a room holds: its commits go to the writer
    thread, beside the loop's next turn, until it has time to spare again."""
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "INLINE_LOOP_BUSY", 0.5)
    updates, text = edits(seed=11, count=3)
    async with watched_sqlite_store(tmp_path / "busy.sqlite3") as (store, threads):
        await asyncio.sleep(sqlite.INLINE_LOOP_WINDOW_S)  # a quiet window
        await store.append("doc", updates[:1])
        burn_until = time.thread_time() + 3 * sqlite.INLINE_LOOP_WINDOW_S
        while time.thread_time() < burn_until:  # the loop's thread busy for three windows
            pass
        await store.append("doc", updates[1:2])
        await asyncio.sleep(2 * sqlite.INLINE_LOOP_WINDOW_S)  # and idle again
        await store.append("doc", updates[2:])
        assert threads == ["MainThread", "sqlite-writer_0", "MainThread"]
        assert replay((await store.load("doc")).updates) == text


def replay_update(updates: list[bytes]) -> bytes:
    """The state `updates` make, as one update (a snapshot)."""
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


async def _fill(store, docs: int, appends: int, size: int) -> None:
    payload = bytes(size)  # what sqlite stores, not a CRDT update: these appends are never loaded
    for i in range(appends):
        await asyncio.gather(*(store.append(f"doc-{d}", [payload + bytes([i % 256, d])]) for d in range(docs)))


@pytest.mark.anyio
async def test_sqlite_commits_never_checkpoint_the_wal_the_checkpointer_does(tmp_path, monkeypatch):
    """SQLite's own checkpoint runs inside the commit that fills 1,000 pages (a 5 ms append every 0.2 s of a
    busy room): here no commit copies the WAL into the database, and the checkpointer's thread does."""
    from server.stores import sqlite

    path = tmp_path / "wal.sqlite3"
    store = sqlite.SqliteStore(path)
    asked = []
    monkeypatch.setattr(store, "_checkpoint_soon", lambda: asked.append(1))  # no checkpointer
    await store.start()
    try:
        await _fill(store, docs=4, appends=200, size=8_000)  # 6.4 MB, some 1,600 pages: past SQLite's 1,000
        assert asked
        assert path.stat().st_size < 1 << 20  # every page is still in the WAL: no commit checkpointed
        monkeypatch.undo()
        monkeypatch.setattr(sqlite, "WAL_CHECKPOINT_EVERY_S", 0.0)
        await store.append("doc-0", [b"one more"])  # asks the checkpointer
        await asyncio.get_running_loop().run_in_executor(store._checkpointer, lambda: None)  # it has run
        assert path.stat().st_size > 6_000_000  # the WAL went into the database
        assert len((await store.load("doc-3")).updates) == 200
    finally:
        await store.close()
    assert not path.with_name(path.name + "-wal").exists()  # the last connection closed checkpointed the rest


@pytest.mark.anyio
@pytest.mark.parametrize("restart_pages", [256, None])
async def test_sqlite_wal_starts_over_under_steady_writes(tmp_path, monkeypatch, restart_pages):
    """A passive checkpoint never catches up with a writer that never pauses, and SQLite only starts the WAL
    over after one that did: 90 appends of 900 KB once left a 245 MB WAL. The writer restarts it once a
    checkpoint found it past WAL_RESTART_PAGES. (restart_pages=None: never, and the WAL holds every page.)"""
    from server.stores import sqlite

    monkeypatch.setattr(sqlite, "WAL_CHECKPOINT_EVERY_S", 0.02)
    monkeypatch.setattr(sqlite, "WAL_RESTART_PAGES", restart_pages or 1 << 40)
    path = tmp_path / "steady.sqlite3"
    wal = path.with_name(path.name + "-wal")
    store = sqlite.SqliteStore(path)
    await store.start()
    try:
        largest = 0
        for _ in range(32):
            await _fill(store, docs=4, appends=25, size=16_000)  # 1.6 MB, some 400 pages
            largest = max(largest, wal.stat().st_size)
        # 51 MB written in all. Restarted: 7-11 MiB at most over six runs, some with the other core busy (what is
        # written while a checkpoint copies). Not: 73 MiB every time.
        if restart_pages:
            assert largest < 24 << 20, f"the WAL grew to {largest / 2**20:.1f} MiB"
        else:
            assert largest > 48 << 20, f"the WAL stayed at {largest / 2**20:.1f} MiB"
        assert len((await store.load("doc-2")).updates) == 800
    finally:
        await store.close()
