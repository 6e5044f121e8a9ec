"""RSS of a server process across load/unload rounds of one large document (issue 14's 97 -> 169 MB).

    python -m bench.room_memory [--mb 8] [--rounds 8]

Writes the document as 4 KB edits into a fresh SQLite store, then loads it into a room and unloads it,
round after round, in this process, printing VmRSS loaded and unloaded. A leak grows each round; allocator
retention plateaus after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
from pathlib import Path

from pycrdt import Doc, Text

from server.fanout import NullFanout
from server.metrics import Metrics
from server.rooms import RoomManager
from server.stores.sqlite import SqliteStore


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def run(mb: int, rounds: int) -> list[dict]:
    store = SqliteStore(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    await store.start()
    source = Doc()
    text = source.get("content", type=Text)
    rng = random.Random(0)
    updates = []
    for _ in range(mb * 256):
        before = source.get_state()
        text.insert(rng.randint(0, len(text)), "".join(rng.choice("abcdefgh ") for _ in range(4000)))
        updates.append(source.get_update(before))
    await store.append("big", updates)
    del source, text, updates
    rooms = RoomManager(store, NullFanout(), Metrics(), 1 << 30, 256 << 10, 0.0, max_pending_bytes=1 << 20)
    rows = []
    for round_ in range(rounds):
        room = await rooms.acquire("big")
        loaded = rss_mib()
        rooms.release(room)
        del room
        while rooms.rooms:
            await asyncio.sleep(0.01)
        rows.append({"round": round_, "loaded_mib": round(loaded), "unloaded_mib": round(rss_mib())})
    await rooms.close()
    await store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    rows = asyncio.run(run(args.mb, args.rounds))
    print("| round | RSS loaded (MiB) | RSS unloaded (MiB) |\n|---|---|---|")
    for row in rows:
        print(f"| {row['round']} | {row['loaded_mib']} | {row['unloaded_mib']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
