"""One room under a typing load, in process: where a keystroke's CPU goes without sockets (reported, never
asserted).

N typists (peers whose writes only count) type one character at a time into one document at a fixed total
rate, paced in 1 ms ticks, through `Room.handle`, the flush, version history and the real SQLite store in a
temporary directory. What `bench/collab.py` measures over loopback TCP is this plus the websocket and the
kernel; here the room's own part shows alone, and so do the threads it keeps busy.

    python -m bench.room_load                        # 50 typists, 8,000 edits/s (the ramp's top)
    python -m bench.room_load --rate 500             # the room scenario's rate: every edit a batch of its own
    python -m bench.room_load --history off
    python -m bench.room_load --rate 500 --cursors   # each keystroke followed by its typist's cursor

Reports the process's CPU per edit, `Room.handle`'s time per edit, each thread's CPU per edit (the event
loop, SQLite's writer and checkpointer, history's workers), and the frames per edit sent to the typists with the
socket writes they took (each a system call on a real connection, which this bench does not make).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from pycrdt import Doc, Text

from server.auth import OPEN_GRANT
from server.awareness import AwarenessEntry, encode_awareness_update
from server.fanout import NullFanout
from server.history.recorder import HistoryPolicy
from server.metrics import Metrics
from server.peer import Peer
from server.protocol import SYNC_UPDATE, encode_awareness, encode_sync
from server.ratelimit import TokenBucket
from server.room import Room
from server.stores.sqlite import SqliteStore

TICK_S = 0.001
WARMUP_S = 0.5


def keystrokes(typists: int, count: int, cursors: bool = False) -> list[tuple[int, list[bytes]]]:
    """(typist, its frames) for `count` one-character edits, typists taking turns, each at the end of its own
    text: the sync update y-websocket sends for a keystroke, and with `cursors` the awareness update the editor
    sends after it (y-codemirror's cursor, as relative positions, beside the user's name and colours)."""
    docs = [Doc(client_id=1000 + i) for i in range(typists)]
    texts = [doc.get("content", type=Text) for doc in docs]
    edits = []
    for k in range(count):
        i = k % typists
        before = docs[i].get_state()
        texts[i] += "x"
        frames = [encode_sync(SYNC_UPDATE, docs[i].get_update(before))]
        if cursors:
            frames.append(cursor_frame(1000 + i, k // typists + 1, len(str(texts[i]))))
        edits.append((i, frames))
    return edits


def cursor_frame(client_id: int, clock: int, at: int) -> bytes:
    """An awareness update with the client's state after a keystroke: its name, colours and cursor."""
    position = {"type": None, "tname": None, "item": {"client": client_id, "clock": at - 1}, "assoc": 0}
    state = {
        "user": {"name": f"Typist {client_id}", "color": "#30bced", "colorLight": "#30bced33"},
        "cursor": {"anchor": position, "head": position},
    }
    entry = AwarenessEntry(client_id, clock, json.dumps(state, separators=(",", ":")))
    return encode_awareness(encode_awareness_update([entry]))


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads, by Python thread name (a pool's workers summed)."""
    names = {str(t.native_id): t.name.rsplit("_", 1)[0] for t in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for task in glob.glob(f"/proc/{os.getpid()}/task/*"):
        try:
            fields = Path(task, "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = names.get(task.rsplit("/", 1)[1], "other")
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return cpu


async def measure(rate: float, seconds: float, typists: int, history: bool, cursors: bool = False) -> dict:
    store = SqliteStore(Path(tempfile.mkdtemp()) / "room_load.sqlite3")
    await store.start()
    metrics = Metrics()
    policy = HistoryPolicy(history, instance_id="bench")
    room = Room("doc", store, NullFanout(), metrics, 1 << 26, 1 << 22, 1 << 20, history=policy)
    await room.load()
    written = writes = 0

    def write_now(*frames: bytes) -> bool:
        nonlocal written, writes
        written += len(frames)
        writes += 1  # one send to a client's socket, however many frames
        return True

    async def unused(*_) -> None:
        raise AssertionError("every write goes through write_now")

    peers = []
    for _ in range(typists):
        peer = Peer(unused, unused, OPEN_GRANT, "bench", 1000, TokenBucket(1e9, 10**9), metrics,
                    max_send_queue_bytes=1 << 24, write_now=write_now)  # fmt: skip
        room.join(peer)
        peers.append(peer)
    per_tick = max(1, round(rate * TICK_S))
    warmup, measured = int(rate * WARMUP_S), int(rate * seconds)
    edits = iter(keystrokes(typists, warmup + measured, cursors))
    handle_s = 0.0

    async def type_for(count: int) -> None:
        nonlocal handle_s
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in range(0, count, per_tick):
            await asyncio.sleep(max(0.0, start + tick / rate - loop.time()))
            for _ in range(min(per_tick, count - tick)):
                typist, frames = next(edits)
                began = time.perf_counter()
                for frame in frames:
                    room.handle(peers[typist], frame)
                handle_s += time.perf_counter() - began
        await room.flush()

    await type_for(warmup)
    handle_s, written, writes = 0.0, 0, 0
    threads_before, cpu_before, began = thread_cpu_s(), time.process_time(), time.perf_counter()
    await type_for(measured)
    wall_s, cpu_s, threads_after = time.perf_counter() - began, time.process_time() - cpu_before, thread_cpu_s()
    if any(not peer.is_open for peer in peers):
        raise RuntimeError("the room closed a typist: the load is not what it claims")
    if cursors and len(room.awareness.states.present) != typists:
        raise RuntimeError("the room refused a typist's cursor: the load is not what it claims")
    if len(str(room.text)) != warmup + measured:
        raise RuntimeError(f"the document holds {len(str(room.text))} of {warmup + measured} keystrokes")
    await room.close()
    await store.close()
    return {
        "rate": rate, "edits": measured, "typists": typists, "history": history, "cursors": cursors,
        "achieved_rate": measured / wall_s,
        "cpu_us_per_edit": cpu_s / measured * 1e6,
        "handle_us_per_edit": handle_s / measured * 1e6,
        "frames_per_edit": written / measured,
        "writes_per_edit": writes / measured,
        "threads_us_per_edit": {
            name: (threads_after.get(name, 0.0) - threads_before.get(name, 0.0)) / measured * 1e6
            for name in threads_after
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=8000.0, help="edits per second, all typists together")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds (after a half-second warm-up)")
    parser.add_argument("--typists", type=int, default=50)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    parser.add_argument("--cursors", action="store_true", help="each keystroke followed by the typist's cursor")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(measure(args.rate, args.seconds, args.typists, args.history == "on", args.cursors))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    threads = ", ".join(f"{name} {us:.0f}" for name, us in sorted(result["threads_us_per_edit"].items()) if us >= 0.5)
    cursors = ", each with its cursor" if args.cursors else ""
    print(f"{result['typists']} typists, {result['achieved_rate']:,.0f} edits/s{cursors}, history {args.history}")
    print(f"CPU per edit        {result['cpu_us_per_edit']:7.1f} us  (threads, us: {threads})")
    print(f"Room.handle per edit {result['handle_us_per_edit']:6.1f} us")
    print(f"frames per edit     {result['frames_per_edit']:7.1f}  (in {result['writes_per_edit']:.1f} socket writes)")


if __name__ == "__main__":
    main()
