"""What one durable append costs SQLite itself, alone: a transaction of one update row and one history row
in the store's schema, committed back to back or one every 2 ms (reported, never asserted).

The room scenario's 500 edits/s are 500 commits of one edit each, 2 ms apart; `bench/room_load.py --rate
500` puts the store's writer thread at 160-210 µs of CPU an append. This shows how much of that is SQLite's
own commit once its caches have gone cold between commits, with the store's pragmas (WAL, synchronous=NORMAL,
no automatic checkpoint) and no Python threads around it, for two page sizes.

    python -m bench.sqlite_commit
    python -m bench.sqlite_commit --commits 500
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from server.stores.sqlite import SCHEMA

META = '{"author":{"name":"Ann","color":"#aabbcc","verified":false},"origin":"typing","session":"i:1"}'
GAP_S = 0.002  # the room scenario's gap between commits


def cpu_us_per_commit(page_size: int, commits: int, gap_s: float) -> float:
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
        conn.execute("BEGIN")
        conn.execute("INSERT INTO updates (doc, data) VALUES (?, ?)", ("doc", update))
        conn.execute("INSERT INTO history (doc, seq, meta, data) VALUES (?, ?, ?, ?)", ("doc", seq, META, update))
        conn.execute("COMMIT")
        cpu += time.thread_time() - began
    conn.close()
    return cpu / commits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    args = parser.parse_args()
    rows = [
        (page_size, cpu_us_per_commit(page_size, args.commits, 0.0), cpu_us_per_commit(page_size, args.commits, GAP_S))
        for page_size in (4096, 1024)
    ]
    print(f"{'page':>6}  {'back to back':>13}  {'every 2 ms':>11}   (CPU per commit)")
    for page_size, hot, cold in rows:
        print(f"{page_size:>6}  {hot:>10.1f} us  {cold:>8.1f} us")


if __name__ == "__main__":
    main()
