"""What one durable append costs SQLite itself, alone: a keystroke's update row and its history row in the
store's schema, committed back to back or one every 2 ms (reported, never asserted).

The room scenario's 500 edits/s are 500 commits of one edit each, 2 ms apart. This shows how much of the store's
writer thread's CPU an append is SQLite's own commit once its caches have gone cold between commits, with the
store's pragmas (WAL, synchronous=NORMAL, no automatic checkpoint) and no other threads, written two ways:
- four statements: BEGIN, the log row, the history row, COMMIT (the store before 2026-12-07);
- one statement: the store's own insert into its `appends` view, which is its own transaction.
Each statement is a call into SQLite that releases and re-takes the GIL.

    python -m bench.sqlite_commit
    python -m bench.sqlite_commit --commits 500 --page-size 1024
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from server.stores.sqlite import SCHEMA, _insert_sql

META = '{"author":{"name":"Ann","color":"#aabbcc","verified":false},"origin":"typing","session":"i:1"}'
GAP_S = 0.002  # the room scenario's gap between commits
HISTORY_ROW = (
    "INSERT INTO history (doc, seq, data, meta) "
    "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3 FROM history WHERE doc = ?1"
)


def four_statements(conn: sqlite3.Connection, seq: int, update: bytes) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO updates (doc, data) VALUES (?, ?)", ("doc", update))
    conn.execute(HISTORY_ROW, ("doc", update, META))
    conn.execute("COMMIT")


def one_statement(conn: sqlite3.Connection, seq: int, update: bytes) -> None:
    conn.execute(_insert_sql(2), ("doc", seq, update, None, "doc", None, update, META))


def cpu_us_per_commit(commit, page_size: int, commits: int, gap_s: float) -> float:
    path = Path(tempfile.mkdtemp()) / "commit.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")  # before the first table: fixed from then on
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(SCHEMA)
    update = os.urandom(30)  # a keystroke's update is some 30 bytes
    cpu = 0.0
    for seq in range(1, commits + 1):
        if gap_s:
            time.sleep(gap_s)
        began = time.thread_time()
        commit(conn, seq, update)
        cpu += time.thread_time() - began
    if conn.execute("SELECT count(*) FROM history").fetchone()[0] != commits:
        raise RuntimeError("a commit did not store its history row")
    conn.close()
    return cpu / commits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=4096)
    args = parser.parse_args()
    print(f"{'':>16}  {'back to back':>13}  {'every 2 ms':>11}   (CPU per commit, {args.page_size} B pages)")
    for name, commit in (("four statements", four_statements), ("one statement", one_statement)):
        hot = cpu_us_per_commit(commit, args.page_size, args.commits, 0.0)
        cold = cpu_us_per_commit(commit, args.page_size, args.commits, GAP_S)
        print(f"{name:>16}  {hot:>10.1f} us  {cold:>8.1f} us")


if __name__ == "__main__":
    main()
