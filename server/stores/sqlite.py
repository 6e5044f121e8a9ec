"""Embedded store: SQLite in WAL mode, one writer thread for every write but the small appends that find it idle.

Durability: with WAL and synchronous=NORMAL a committed append is in the WAL file
before `append` returns, so it survives the process being killed (SIGKILL) — the
crash the contract names. A power cut may lose the last transactions; set
synchronous=FULL (`fsync` per commit, ~10x slower appends) if that matters.

The WAL is copied back into the database (a checkpoint, with its fsyncs) by a thread
of its own, never by a commit: SQLite's automatic checkpoint runs inside the commit
that fills 1,000 pages, and at 500 edits/s in one room that was every 0.2 s a 5 ms
append, which every keystroke arriving meanwhile waited for (issue 21: the room's
p99). Once the WAL is past WAL_RESTART_PAGES the writer makes it start over, as
the automatic checkpoint did, right after a passive checkpoint has copied nearly all
of it. Each commit is also as few statements as the batch allows, because each is a
release and a re-take of the GIL that the busy event loop holds.

A small append that finds the writer thread idle commits on the event loop instead (a
turn after it was asked for, so the appends of every room flushing in that turn commit
together). Handing a commit to a thread and back costs more than the commit: two thread
wake-ups, the executor's machinery and the GIL handed back and forth were 150-200 µs of
CPU an append at 500 edits/s, against SQLite's own 90-130 (issue 21). A commit on the loop
never waits: it runs without SQLite's busy timeout, and one that meets a lock (another
process writing the file), fails, or is large goes to the writer thread, which waits and
retries; after one that took long (a disk that stalls), the next ones go to the thread for
a while, so a slow disk holds up the appends, never the loop. So do they while the loop is
busy most of its core, where the thread's commit running beside it is worth its cost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from ..history.entry import HistoryEntry
from .base import StoredDoc

log = logging.getLogger(__name__)

APPEND_ROWS_PER_INSERT = 2000  # 4 values a row: SQLite binds at most 32,766 a statement
WAL_CHECKPOINT_EVERY_S = 0.5  # after a write, at most this often
# Past this many pages (16 MiB at SQLite's 4 KiB) the WAL is made to start over. A passive checkpoint copies
# frames while the writer goes on adding more, so under steady writes it never catches up, and SQLite starts
# the WAL over only after one that did: 90 appends of 900 KB left a 245 MB WAL beside an 84 MB database.
WAL_RESTART_PAGES = 4096
# How long a restart waits for readers to leave the WAL (every write waits with it); a restart that gives up
# is tried again after the next passive checkpoint.
WAL_RESTART_WAIT_MS = 20
BUSY_TIMEOUT_MS = 5000
# A batch of appends commits on the event loop when the writer thread is idle, the batch is small (its updates
# at most this many bytes: a keystroke is some 30, its commit 90-130 µs) and the loop has time to spare: it was
# busy (its thread's CPU) less than INLINE_LOOP_BUSY of the last INLINE_LOOP_WINDOW_S. A loop busier than that
# is what limits the rate a room holds, and a commit on the thread runs beside its next turn.
INLINE_COMMIT_BYTES = 16 * 1024
INLINE_LOOP_BUSY = 0.6
INLINE_LOOP_WINDOW_S = 0.1
# A commit on the loop that took longer than this (a disk that stalls, a checkpoint's fsync in its way) sends
# the next INLINE_PAUSE_S of appends to the writer thread.
INLINE_COMMIT_SLOW_S = 0.01
INLINE_PAUSE_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_by_doc ON updates (doc, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    doc TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    seq INTEGER NOT NULL
);
-- A rowid table with an index, not WITHOUT ROWID keyed by (doc, seq): there, 900 KB entries live in the
-- key's b-tree and every insert grew the server's RSS by 13-75 MiB over 90 of them (tests/server/test_limits.py
-- `..._never_reads_...`); here they sit in overflow pages and RSS stays flat (-5 to 0 MiB over three runs).
CREATE TABLE IF NOT EXISTS history (
    doc TEXT NOT NULL,
    seq INTEGER NOT NULL,
    meta TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS history_by_doc ON history (doc, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    doc TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc, seq)
) WITHOUT ROWID;
-- What an append writes, in one statement: its log rows (meta NULL, with the seq the writer gives them) and its
-- history entries (with meta, numbered on from the document's last entry). Never read.
CREATE VIEW IF NOT EXISTS appends (doc, seq, data, meta) AS SELECT doc, seq, data, NULL FROM updates WHERE 0;
CREATE TRIGGER IF NOT EXISTS append_log INSTEAD OF INSERT ON appends WHEN NEW.meta IS NULL BEGIN
    INSERT INTO updates (seq, doc, data) VALUES (NEW.seq, NEW.doc, NEW.data);
END;
CREATE TRIGGER IF NOT EXISTS append_history INSTEAD OF INSERT ON appends WHEN NEW.meta IS NOT NULL BEGIN
    INSERT INTO history (doc, seq, data, meta)
    SELECT NEW.doc, coalesce(max(seq), 0) + 1, NEW.data, NEW.meta FROM history WHERE doc = NEW.doc;
END;
"""
# The last log seq ever given: AUTOINCREMENT's record of it (a compaction may have deleted that row).
LAST_SEQ = """SELECT max(
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),
    coalesce((SELECT max(seq) FROM updates), 0),
    coalesce((SELECT max(seq) FROM snapshots), 0))"""


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path):
        self.path = path
        # One thread owns the writing connection: appends are serialised without locks.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        # History reads (a version list, a rebuild's replay) take their own thread and connection: WAL lets
        # them read while the writer appends, so listing 100,000 entries never holds up a keystroke's commit.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._reader_conn: sqlite3.Connection | None = None
        self._appends: deque = deque()  # (doc, updates, history, future) waiting for the next group commit
        self._is_commit_scheduled = False
        # The event loop's: writer jobs submitted and not yet heard back from. At 0 the loop may use the writing
        # connection itself; until _inline_paused_until (monotonic) it does not.
        self._writer_jobs = 0
        self._inline_paused_until = 0.0
        self._loop_window: tuple[float, float] | None = None  # (perf_counter, the loop thread's CPU) at its start
        self._loop_busy = 0.0  # the loop thread's CPU share in the last window
        self._busy_timeout_ms = BUSY_TIMEOUT_MS  # the writing connection's: 0 while the loop commits on it
        # Checkpoints the WAL on its own connection: PASSIVE never blocks the writer or a reader.
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpointer")
        self._checkpointer_conn: sqlite3.Connection | None = None
        self._checkpointed_at = float("-inf")  # the loop's: when it last asked for a checkpoint
        self._is_restart_due = False  # set by the checkpointer, done by the writer thread
        # The writing connection's holder's: the last log seq given. The store numbers the log itself, so an append
        # needs no statement to learn its row's seq; AUTOINCREMENT still records it, for a reopen to go on from.
        self._last_seq = 0

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job, not a commit's
        # A WAL that started over is cut back to this size: a burst of large appends leaves no large file.
        conn.execute(f"PRAGMA journal_size_limit={WAL_RESTART_PAGES * 4096}")
        return conn

    async def _write(self, fn, *args):
        return await self._on_writer(functools.partial(fn, *args))

    def _on_writer(self, job) -> asyncio.Future:
        """Runs `job` on the writer thread, with SQLite's busy timeout; until the loop hears it has finished, the
        writing connection is the thread's alone."""
        future = asyncio.get_running_loop().run_in_executor(self._writer, self._waiting_for_locks, job)
        self._writer_jobs += 1  # after the submit: one refused (a closed store) is not counted
        future.add_done_callback(self._writer_done)
        return future

    def _waiting_for_locks(self, job):
        self._set_busy_timeout(BUSY_TIMEOUT_MS)
        return job()

    def _writer_done(self, _job: asyncio.Future) -> None:
        self._writer_jobs -= 1
        self._after_write()

    def _set_busy_timeout(self, ms: int) -> None:
        """How long a statement on the writing connection waits for another connection's lock (a statement each
        time it changes: rarely, from the loop's commits to a writer job and back)."""
        if self._busy_timeout_ms != ms:
            self._conn.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_timeout_ms = ms

    def _after_write(self) -> None:
        """On the loop, after each commit or writer job: the checkpointer, and the WAL's restart when it is due."""
        self._checkpoint_soon()
        if self._is_restart_due:
            self._is_restart_due = False
            self._on_writer(self._restart_wal)

    def _checkpoint_soon(self) -> None:
        """On the loop, after a write: asks the checkpointer for a checkpoint, at most once every
        WAL_CHECKPOINT_EVERY_S (it runs them one at a time; one that finds nothing new costs microseconds)."""
        now = time.monotonic()
        if now - self._checkpointed_at >= WAL_CHECKPOINT_EVERY_S:
            self._checkpointed_at = now
            self._checkpointer.submit(self._checkpoint_wal)

    def _checkpoint_wal(self) -> None:
        try:
            if self._checkpointer_conn is None:
                self._checkpointer_conn = self._connect()
            _, wal_pages, _ = self._checkpointer_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if wal_pages >= WAL_RESTART_PAGES:
                self._is_restart_due = True
        except sqlite3.Error as exc:  # the WAL only grows until the next one succeeds
            log.warning("checkpointing the SQLite WAL failed: %s", exc)

    def _restart_wal(self) -> None:
        """A writer job, once the last passive checkpoint found the WAL too long. The writing connection
        restarts it itself: as the only one that writes, it finds the write lock free, so no commit waits for
        a lock handed between threads; and right after the passive checkpoint only the last few commits are
        left to copy."""
        try:
            self._set_busy_timeout(WAL_RESTART_WAIT_MS)  # a long read holds up no write for long
            self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as exc:
            log.warning("restarting the SQLite WAL failed: %s", exc)
        finally:
            self._set_busy_timeout(BUSY_TIMEOUT_MS)

    async def _read(self, fn, *args):
        def run():
            if self._reader_conn is None:
                self._reader_conn = self._connect()
            return fn(self._reader_conn, *args)

        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def open_db():
            self._conn = self._connect()
            self._conn.executescript(SCHEMA)
            self._last_seq = self._conn.execute(LAST_SEQ).fetchone()[0]

        await self._write(open_db)

    async def load(self, doc: str) -> StoredDoc:
        return await self._write(self._load, doc)

    def _load(self, doc: str) -> StoredDoc:
        conn = self._conn
        updates, size, cursor = [], 0, 0
        row = conn.execute("SELECT data, seq FROM snapshots WHERE doc = ?", (doc,)).fetchone()
        if row:
            updates.append(row[0])
            size, cursor = len(row[0]), row[1]
        for data, seq in conn.execute(
            "SELECT data, seq FROM updates WHERE doc = ? AND seq > ? ORDER BY seq", (doc, cursor)
        ):
            updates.append(data)
            size += len(data)
            cursor = seq
        return StoredDoc(updates, str(cursor), size)

    async def append(self, doc: str, updates: list[bytes], history: Sequence[HistoryEntry] = ()) -> str:
        """Appends in the next group commit: every append waiting when it starts (from any number of documents)
        goes into one transaction; one that fails fails alone (see _commit_appends)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._appends.append((doc, updates, history, future))
        if not self._is_commit_scheduled:
            self._is_commit_scheduled = True
            loop.call_soon(self._commit_soon)  # the appends of this turn's other flushes join it
        return await future

    def _commit_soon(self) -> None:
        """On the loop: the waiting appends commit here if the writer thread is idle, the loop has time to spare
        and they are small, and on the writer thread otherwise (see the module's docstring)."""
        is_idle = not self._writer_jobs and time.monotonic() >= self._inline_paused_until
        if is_idle and self._loop_has_time() and self._commit_on_loop():
            return
        try:
            self._on_writer(self._commit_appends).add_done_callback(_settle_job)
        except RuntimeError as exc:  # the store was closed: nothing more is written
            _settle([(append[-1], None, exc) for append in self._take_appends()])

    def _commit_on_loop(self) -> bool:
        """Commits the waiting appends on the loop, if they are small; whether it did (if not, they still wait)."""
        batch = []
        began = time.perf_counter()
        try:
            if not self._is_waiting_small():
                return False
            batch = self._take_appends()
            self._set_busy_timeout(0)
            outcomes = self._transaction(batch)
        except Exception:  # locked by another process, or an append that fails: the writer waits and retries
            self._appends.extendleft(reversed(batch))
            self._is_commit_scheduled = True
            return False
        took = time.perf_counter() - began
        if took > INLINE_COMMIT_SLOW_S:
            self._inline_paused_until = time.monotonic() + INLINE_PAUSE_S
            log.info("an append took %.0f ms on the event loop: appends go to the writer thread for %g s",
                     took * 1000, INLINE_PAUSE_S)  # fmt: skip
        self._after_write()  # asked before the appenders hear back: an append that returned has asked
        _settle(outcomes)
        return True

    def _loop_has_time(self) -> bool:
        """On the loop: whether it was busy less than INLINE_LOOP_BUSY of the last window (measured once a
        window: the thread's CPU clock is a system call)."""
        now = time.perf_counter()
        if self._loop_window is None:  # the first: measured from here, on the loop's thread
            self._loop_window = (now, time.thread_time())
        began, cpu_then = self._loop_window
        if now - began >= INLINE_LOOP_WINDOW_S:
            cpu = time.thread_time()
            self._loop_busy = (cpu - cpu_then) / (now - began)
            self._loop_window = (now, cpu)
        return self._loop_busy < INLINE_LOOP_BUSY

    def _is_waiting_small(self) -> bool:
        return (
            sum(sum(map(len, updates)) + sum(len(entry.update) for entry in history)
                for _, updates, history, _ in self._appends)
            <= INLINE_COMMIT_BYTES
        )  # fmt: skip

    def _take_appends(self) -> list:
        """Every append waiting; one from now on schedules the next commit. Popped one by one: on the writer
        thread, the loop may append meanwhile."""
        self._is_commit_scheduled = False
        batch = []
        while self._appends:
            batch.append(self._appends.popleft())
        return batch

    def _commit_appends(self) -> list:
        """On the writer thread: the waiting appends' outcomes. 200 documents typed in at once were 200
        transactions, each a thread handoff and a WAL commit; now they are one (issue 21). The batch is tried as
        one transaction; if an append in it fails, that is undone and each append is tried in a transaction of
        its own, so a bad one fails alone (a savepoint per append would cost two statements every time for a
        case that almost never happens). An append that met another process's seq is retried the same way."""
        batch = self._take_appends()
        if not batch:
            return []
        try:
            return self._transaction(batch)
        except Exception as exc:
            if self._catch_up_seq() or len(batch) > 1:
                return [self._alone(append) for append in batch]
            return [(batch[0][-1], None, exc)]

    def _catch_up_seq(self) -> bool:
        """After a failed append: another process writing the same file may have taken seqs this one has not
        seen (the failure was then the log's primary key). Returns whether it had, so the retry can go on from
        the last one stored."""
        try:
            stored = self._conn.execute(LAST_SEQ).fetchone()[0]
        except sqlite3.Error as exc:  # the retries will fail too, and say why
            log.warning("reading the SQLite log's last seq failed: %s", exc)
            return False
        if stored <= self._last_seq:
            return False
        self._last_seq = stored
        return True

    def _alone(self, append: tuple) -> tuple:
        """One append in a transaction of its own: its outcome."""
        try:
            return self._transaction([append])[0]
        except Exception as exc:
            return (append[-1], None, exc)

    def _transaction(self, batch: list) -> list:
        """Appends `batch` atomically, all of it or (raising) none of it. Its log rows take the next seqs; its
        history entries are numbered on in the same statement. A batch that fits in one statement is SQLite's
        implicit transaction: one call into SQLite instead of four (BEGIN, the log row, the history row,
        COMMIT). SQLite's own work is the same (`python -m bench.sqlite_commit`), but each call releases the
        GIL and takes it back from the busy event loop: at the room scenario's 500 edits/s the writer thread
        spent 195-210 µs of CPU an append with four, 180-200 with one (`bench.room_load --rate 500`, 5 pairs)."""
        rows, outcomes, seq = [], [], self._last_seq
        for doc, updates, history, future in batch:
            if not updates:
                raise ValueError("an append holds at least one update")
            for update in updates:
                seq += 1
                rows.append((doc, seq, update, None))
            rows += [(doc, None, entry.update, entry.to_meta()) for entry in history]
            outcomes.append((future, str(seq), None))
        if len(rows) <= APPEND_ROWS_PER_INSERT:
            self._insert(rows)
        else:
            self._in_transaction(lambda: self._insert(rows))
        self._last_seq = seq
        return outcomes

    def _insert(self, rows: list[tuple]) -> None:
        """(doc, seq, data, meta) rows into `appends`, as few statements as SQLite's bind limit allows."""
        for start in range(0, len(rows), APPEND_ROWS_PER_INSERT):
            chunk = rows[start : start + APPEND_ROWS_PER_INSERT]
            self._conn.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])

    def _in_transaction(self, change):
        """Runs `change()` in a transaction of its own on the writing connection; returns what it returns."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            result = change()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        await self._write(self._replace, doc, snapshot, int(upto))

    def _replace(self, doc: str, snapshot: bytes, upto: int) -> None:
        def replace() -> None:
            self._conn.execute(
                "INSERT INTO snapshots (doc, data, seq) VALUES (?, ?, ?) "
                "ON CONFLICT (doc) DO UPDATE SET data = excluded.data, seq = excluded.seq "
                "WHERE excluded.seq > snapshots.seq",
                (doc, snapshot, upto),
            )
            self._conn.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, upto))

        self._in_transaction(replace)

    # --- history ------------------------------------------------------------------------

    async def history(
        self,
        doc: str,
        after: int = 0,
        upto: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_updates: bool = True,
    ) -> list[HistoryEntry]:
        return await self._read(self._history, doc, after, upto, limit, newest_first, with_updates)

    @staticmethod
    def _history(conn, doc, after, upto, limit, newest_first, with_updates) -> list[HistoryEntry]:
        rows = conn.execute(
            f"SELECT seq, {'data' if with_updates else 'zeroblob(0)'}, meta FROM history "
            f"WHERE doc = ? AND seq > ? AND seq <= ? ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?",
            (doc, after, upto if upto is not None else 1 << 62, limit if limit is not None else -1),
        ).fetchall()
        return [HistoryEntry.from_meta(seq, data, meta) for seq, data, meta in rows]

    async def history_updates(self, doc: str, after: int = 0) -> list[tuple[int, bytes]]:
        def read(conn) -> list[tuple[int, bytes]]:
            return conn.execute(
                "SELECT seq, data FROM history WHERE doc = ? AND seq > ? ORDER BY seq", (doc, after)
            ).fetchall()

        return await self._read(read)

    async def add_baseline(self, doc: str, entry: HistoryEntry) -> bool:
        return await self._write(self._add_baseline, doc, entry)

    def _add_baseline(self, doc: str, entry: HistoryEntry) -> bool:
        def add() -> bool:
            is_empty = self._conn.execute("SELECT 1 FROM history WHERE doc = ? LIMIT 1", (doc,)).fetchone() is None
            if is_empty:
                self._insert([(doc, None, entry.update, entry.to_meta())])
            return is_empty

        return self._in_transaction(add)

    async def checkpoint(self, doc: str, at_or_before: int) -> tuple[int, bytes] | None:
        return await self._read(self._checkpoint, doc, at_or_before)

    @staticmethod
    def _checkpoint(conn, doc: str, at_or_before: int) -> tuple[int, bytes] | None:
        row = conn.execute(
            "SELECT seq, data FROM checkpoints WHERE doc = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (doc, at_or_before),
        ).fetchone()
        return (row[0], row[1]) if row else None

    async def put_checkpoint(self, doc: str, seq: int, state: bytes) -> None:
        await self._write(
            lambda: self._conn.execute(
                "INSERT OR REPLACE INTO checkpoints (doc, seq, data) VALUES (?, ?, ?)", (doc, seq, state)
            )
        )

    async def fold_history(
        self, doc: str, run: list[HistoryEntry], merged: HistoryEntry, drop_checkpoints: list[int]
    ) -> bool:
        return await self._write(self._fold, doc, run, merged, drop_checkpoints)

    def _fold(self, doc: str, run: list[HistoryEntry], merged: HistoryEntry, drop_checkpoints: list[int]) -> bool:
        seqs = [entry.seq for entry in run]
        assert merged.seq == max(seqs), "a merged entry takes the seq of the last entry it folds"
        conn = self._conn

        def fold() -> bool:
            held = conn.execute(
                "SELECT seq, data FROM history WHERE doc = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (doc, seqs[0], seqs[-1]),
            ).fetchall()
            if held != [(entry.seq, entry.update) for entry in run]:
                return False  # another instance folded some of them since they were read
            conn.executemany("DELETE FROM history WHERE doc = ? AND seq = ?", [(doc, s) for s in seqs])
            conn.execute(
                "INSERT INTO history (doc, seq, data, meta) VALUES (?, ?, ?, ?)",
                (doc, merged.seq, merged.update, merged.to_meta()),
            )
            conn.executemany("DELETE FROM checkpoints WHERE doc = ? AND seq = ?", [(doc, s) for s in drop_checkpoints])
            return True

        return self._in_transaction(fold)

    async def history_bytes(self, doc: str) -> int:
        def measure(conn) -> int:
            entries = conn.execute(
                "SELECT coalesce(sum(length(data) + length(CAST(meta AS BLOB)) + 8), 0) FROM history WHERE doc = ?",
                (doc,),
            ).fetchone()[0]
            states = conn.execute(
                "SELECT coalesce(sum(length(data) + 8), 0) FROM checkpoints WHERE doc = ?", (doc,)
            ).fetchone()[0]
            return entries + states  # 8: the seq each row carries

        return await self._read(measure)

    async def check(self) -> dict:
        await self._write(lambda: self._conn.execute("SELECT 1").fetchone())
        return {"kind": self.kind}  # not the path: /healthz answers without a token

    async def close(self) -> None:
        def close_db():
            if self._conn is not None:
                self._conn.close()

        def close_reader():
            if self._reader_conn is not None:
                self._reader_conn.close()

        def close_checkpointer():
            if self._checkpointer_conn is not None:
                self._checkpointer_conn.close()

        # The writer first: no write after it asks for another checkpoint. The connection closed last
        # checkpoints the whole WAL and removes it.
        self._inline_paused_until = float("inf")  # the loop commits nothing more itself
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, close_db)
        await loop.run_in_executor(self._reader, close_reader)
        await loop.run_in_executor(self._checkpointer, close_checkpointer)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    return "INSERT INTO appends (doc, seq, data, meta) VALUES " + ", ".join(["(?, ?, ?, ?)"] * rows)


def _settle_job(job: asyncio.Future) -> None:
    _settle(job.result())


def _settle(outcomes: list) -> None:
    """On the event loop: each append's seq, or why it failed (a flush that was cancelled no longer waits)."""
    for future, seq, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(seq)
