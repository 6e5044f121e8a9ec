"""Embedded store: SQLite in WAL mode, one writer thread that owns every write.

Durability: with WAL and synchronous=NORMAL a committed append is in the WAL file
before `append` returns, so it survives the process being killed (SIGKILL) — the
crash the contract names. A power cut may lose the last transactions; set
synchronous=FULL (`fsync` per commit, ~10x slower appends) if that matters.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
"""


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path):
        self.path = path
        # One thread owns the writing connection: appends are serialised without locks.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    async def _write(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

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

    async def append(self, doc: str, updates: list[bytes]) -> str:
        return await self._write(self._append, doc, updates)

    def _append(self, doc: str, updates: list[bytes]) -> str:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT INTO updates (doc, data) VALUES (?, ?)", [(doc, u) for u in updates]
            )
            seq = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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

    async def check(self) -> dict:
        await self._write(lambda: self._conn.execute("SELECT 1").fetchone())
        return {"kind": self.kind}  # not the path: /healthz answers without a token

    async def close(self) -> None:
        def close_db():
            if self._conn is not None:
                self._conn.close()

        await self._write(close_db)
        self._writer.shutdown(wait=True)
