"""Embedded store: SQLite in WAL mode, one writer thread that owns every write.

Durability: with WAL and synchronous=NORMAL a committed append is in the WAL file
before `append` returns, so it survives the process being killed (SIGKILL) — the
crash the contract names. A power cut may lose the last transactions; set
synchronous=FULL (`fsync` per commit, ~10x slower appends) if that matters.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from ..history.entry import HistoryEntry
from .base import StoredDoc

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
"""


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

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    async def _write(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

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
        """Appends in the next group commit: every append waiting when the writer gets to it (from any number of
        documents) goes into one transaction, each in a savepoint of its own, so one that fails fails alone."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._appends.append((doc, updates, history, future))
        if not self._is_commit_scheduled:
            self._is_commit_scheduled = True
            self._writer.submit(self._commit_appends, loop)
        return await future

    def _commit_appends(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the writer thread. 200 documents typed in at once were 200 transactions, each a thread handoff
        and a WAL commit; now they are one (issue 21)."""
        self._is_commit_scheduled = False  # an append from now on schedules the next commit
        batch = []
        while self._appends:
            batch.append(self._appends.popleft())
        if not batch:
            return
        outcomes: list = []
        conn = self._conn
        try:
            conn.execute("BEGIN")
            for doc, updates, history, future in batch:
                conn.execute("SAVEPOINT one_append")
                try:
                    outcomes.append((future, self._append(doc, updates, history), None))
                    conn.execute("RELEASE one_append")
                except Exception as exc:
                    conn.execute("ROLLBACK TO one_append")
                    conn.execute("RELEASE one_append")
                    outcomes.append((future, None, exc))
            conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing of the batch is stored
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, None, exc) for *_, future in batch]
        loop.call_soon_threadsafe(_settle, outcomes)

    def _append(self, doc: str, updates: list[bytes], history: Sequence[HistoryEntry]) -> str:
        """Inside the caller's transaction."""
        conn = self._conn
        conn.executemany("INSERT INTO updates (doc, data) VALUES (?, ?)", [(doc, u) for u in updates])
        seq = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        if history:
            self._record(doc, history)
        return str(seq)

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        await self._write(self._replace, doc, snapshot, int(upto))

    def _replace(self, doc: str, snapshot: bytes, upto: int) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT INTO snapshots (doc, data, seq) VALUES (?, ?, ?) "
                "ON CONFLICT (doc) DO UPDATE SET data = excluded.data, seq = excluded.seq "
                "WHERE excluded.seq > snapshots.seq",
                (doc, snapshot, upto),
            )
            conn.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, upto))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- history ------------------------------------------------------------------------

    def _record(self, doc: str, history: Sequence[HistoryEntry]) -> None:
        """Inside the caller's transaction: the entries, numbered on from the document's last seq."""
        last = self._conn.execute("SELECT max(seq) FROM history WHERE doc = ?", (doc,)).fetchone()[0] or 0
        self._conn.executemany(
            "INSERT INTO history (doc, seq, data, meta) VALUES (?, ?, ?, ?)",
            [(doc, last + i, entry.update, entry.to_meta()) for i, entry in enumerate(history, 1)],
        )

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
        conn = self._conn
        conn.execute("BEGIN")
        try:
            is_empty = conn.execute("SELECT 1 FROM history WHERE doc = ? LIMIT 1", (doc,)).fetchone() is None
            if is_empty:
                self._record(doc, [entry])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return is_empty

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
        conn.execute("BEGIN")
        try:
            held = conn.execute(
                "SELECT seq, data FROM history WHERE doc = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (doc, seqs[0], seqs[-1]),
            ).fetchall()
            if held != [(entry.seq, entry.update) for entry in run]:
                conn.execute("ROLLBACK")
                return False  # another instance folded some of them since they were read
            conn.executemany("DELETE FROM history WHERE doc = ? AND seq = ?", [(doc, s) for s in seqs])
            conn.execute(
                "INSERT INTO history (doc, seq, data, meta) VALUES (?, ?, ?, ?)",
                (doc, merged.seq, merged.update, merged.to_meta()),
            )
            conn.executemany("DELETE FROM checkpoints WHERE doc = ? AND seq = ?", [(doc, s) for s in drop_checkpoints])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return True

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

        await self._write(close_db)
        await asyncio.get_running_loop().run_in_executor(self._reader, close_reader)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)


def _settle(outcomes: list) -> None:
    """On the event loop: each append's seq, or why it failed (a flush that was cancelled no longer waits)."""
    for future, seq, exc in outcomes:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(seq)
