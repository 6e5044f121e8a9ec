"""Version history at scale: listing, rebuilding and storing a 100,000-edit document (reported, never asserted).

Three people type one document in turns over 60 days of a fake clock: sessions of keystrokes, backspaces and
pasted words at a cursor, split by pauses of minutes to hours. Each edit is one store append carrying its
history entry (what the room does for a keystroke that arrives alone: one flushed batch, one entry), with log
compaction and checkpoints running in between as the server runs them. No server and no network: this measures
the store and the history code (`server/history`), in process; the write path's latency with history on
against off is bench/collab.py's (`--history on,off`).

Per store (SQLite in a temporary directory, and Redis on a throwaway redis-server):
- the time to list the first page of versions (the API's default 50, newest first) and every version (paged
  as the API pages, 200 at a time), and to rebuild the text of the oldest, middle and newest version (nearest
  checkpoint + replay). Every rebuilt text is checked against the text the document had then.
- storage per 1,000 edits: the same edits with history off (log + snapshot only), with history on keeping
  everything, and after retention (keep all 7 days, hourly up to 30, daily beyond) with "now" just after the
  last edit, so the 60 days cover all three bands.

    python -m bench.history                                  # 100,000 edits, both stores
    python -m bench.history --edits 2000 --stores sqlite      # a quick look
    python -m bench.history --json $OUT/history.json         # also write the results (JSON)

The table comes last; the JSON file (default `$OUT/history.json` when $OUT is set) holds every figure.

Measured 2026-12-06 on the shared 2-core AMD EPYC VM (load average 2.3-3.8 from other agents' tests, so the
times are upper bounds; the bytes do not depend on load), 100,000 edits, 1,254 versions:

    store   1st page  all versions  rebuild old/mid/new     B/1k off  on       retained (260 versions)
    sqlite  64 ms     2.9 s         0.5 / 98 / 114 ms       3,604     255,222  40,509
    redis   99 ms     3.5 s         0.7 / 13 / 255 ms       3,284     361,725  58,526

History is ~195 bytes an edit by the store's own count, 155 of them the entry's JSON metadata (author,
colour, connection) beside a ~27-byte update; retention keeps about a sixth of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this tree's server package, also when run as a script from elsewhere

from pycrdt import Doc  # noqa: E402

from bench.history_typists import Edit, make_edits  # noqa: E402
from server.history.entry import Author, Change, Origin  # noqa: E402

DOC = "history-bench"
AUTHORS = (Author("Ada", "#d94f3d"), Author("Grace", "#3d7dd9"), Author("Linus", "#3da35d"))
PAUSE_S = 60.0  # the server's default --history-pause-s: a longer pause starts a new version
FIRST_PAGE = 50  # the versions API's default page
MAX_PAGE = 200  # and its largest
COMPACT_MIN_BYTES = 256 << 10  # the server's default --compact-min-bytes
KEEP_ALL_DAYS, HOURLY_DAYS = 7, 30  # the server's retention defaults
REPEATS = 5  # each read is timed this many times; the median is reported


# --- the stores -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def redis_server(workdir: Path):
    """A throwaway redis-server on a free loopback port, no persistence (memory is what is measured)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run with --stores sqlite, or install it")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


class StoreUnderTest:
    """One fresh store of a kind, and how many bytes it holds for the document."""

    def __init__(self, kind: str, workdir: Path, redis_url: str | None, name: str):
        self.kind = kind
        self.name = name
        if kind == "sqlite":
            from server.stores.sqlite import SqliteStore

            self.path = workdir / f"{name}.sqlite3"
            self.store = SqliteStore(self.path)
        else:
            import redis.asyncio as aioredis

            from server.stores.redis import RedisStore, stream_id

            self.stream_id = stream_id
            self.prefix = f"bench-{name}"
            self.store = RedisStore(aioredis.Redis.from_url(redis_url), self.prefix, "bench")

    async def start(self):
        await self.store.start()
        return self.store

    async def total_bytes(self) -> int:
        """Everything the store keeps for the document: SQLite's used pages, or Redis's memory for its keys."""
        if self.kind == "sqlite":
            return await asyncio.to_thread(self._sqlite_bytes)
        client = self.store.client
        # Compaction leaves log entries younger than 60 s of real time for replicas still reading them (the
        # log is the fan-out); the bench writes 60 days in seconds, so trim what the snapshot holds, as the
        # next compaction a minute later would: else "history off" would count the whole log.
        covered = await client.hget(self.store.snapshot_key(DOC), "id")
        if covered is not None:
            ms, seq = self.stream_id(covered)
            await client.xtrim(self.store.log_key(DOC), minid=f"{ms}-{seq + 1}", approximate=False)
        total = 0
        async for key in client.scan_iter(match=f"{self.prefix}:*", count=1000):
            total += await client.memory_usage(key, samples=0) or 0
        return total

    def _sqlite_bytes(self) -> int:
        import sqlite3

        conn = sqlite3.connect(self.path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            used = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
            return used * page_size
        finally:
            conn.close()


# --- the run ------------------------------------------------------------------------------------------------


class Writer:
    """Appends edits the way a room's write path does: one log row per flushed batch with its history entries
    (the room's HistoryRecorder makes them and runs checkpoints in the background), and compaction of the log
    into a snapshot once it outgrows max(256 KiB, the snapshot). The recorder's clock is the fake one; its
    retention is off here (bench_store applies it afterwards, to measure before and after)."""

    def __init__(self, store, is_history_on: bool):
        from server.history.recorder import HistoryPolicy, HistoryRecorder

        self.store = store
        self.now = 0.0
        policy = HistoryPolicy(is_on=True, keep_all_days=0, clock=lambda: self.now)
        self.recorder = HistoryRecorder(store, DOC, policy) if is_history_on else None
        self.replica = Doc()  # the server's replica: compaction snapshots it
        self.cursor = ""
        self.log_bytes = 0
        self.snapshot_bytes = 0

    async def write(self, edit: Edit) -> None:
        self.now = edit.at
        change = Change(AUTHORS[edit.author], Origin("typing"), f"bench:{edit.author + 1}")
        entries = self.recorder.drafts([(edit.update, change)], edit.update) if self.recorder else []
        self.cursor = await self.store.append(DOC, [edit.update], history=entries)
        if self.recorder:
            self.recorder.recorded(entries)
        self.replica.apply_update(edit.update)
        self.log_bytes += len(edit.update)
        if self.log_bytes >= max(COMPACT_MIN_BYTES, self.snapshot_bytes):
            snapshot = self.replica.get_update()
            await self.store.compact(DOC, snapshot, self.cursor)
            self.snapshot_bytes, self.log_bytes = len(snapshot), 0

    async def close(self) -> None:
        """What the room's unload does: the last compaction, and the recorder's housekeeping."""
        if self.log_bytes:
            await self.store.compact(DOC, self.replica.get_update(), self.cursor)
        if self.recorder:
            await self.recorder.close()


async def count_checkpoints(store) -> int:
    found, seq = 0, 1 << 62
    while (checkpoint := await store.checkpoint(DOC, seq)) is not None:
        found, seq = found + 1, checkpoint[0] - 1
    return found


async def timed(make, repeats: int = REPEATS) -> tuple[float, object]:
    """The median of `repeats` runs of `make()` in ms (the machine is shared: one run can be anyone's), and
    what it returned."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = await make()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def all_versions(store) -> tuple[int, int]:
    """Every version, paged as the API pages them; returns (versions, pages)."""
    from server.history.reading import page

    before, num_versions, num_pages = None, 0, 0
    while True:
        versions, before = await page(store, DOC, MAX_PAGE, before, PAUSE_S)
        num_versions += len(versions)
        num_pages += 1
        if before is None:
            return num_versions, num_pages


async def write_all(under_test: StoreUnderTest, edits: list[Edit], is_history_on: bool):
    """A fresh store holding the document; returns it open, and the seconds the writing took."""
    store = await under_test.start()
    writer = Writer(store, is_history_on)
    started = time.perf_counter()
    for edit in edits:
        await writer.write(edit)
    await writer.close()
    return store, time.perf_counter() - started


async def measure_reads(store, kind: str, texts: dict[int, str], row: dict) -> list:
    """Listing and rebuilding, each timed; every rebuilt text checked. Returns the entries."""
    from server.history.reading import page
    from server.history.rebuild import text_at

    await store.history(DOC, limit=1)  # a server has its read connection open already
    row["first_page_ms"], _ = await timed(lambda: page(store, DOC, FIRST_PAGE, None, PAUSE_S))
    row["all_versions_ms"], (row["versions"], row["pages"]) = await timed(lambda: all_versions(store))
    entries = await store.history(DOC, with_updates=False)  # the seqs: metadata is enough
    if len(entries) != row["edits"]:
        raise RuntimeError(f"{kind}: {len(entries)} history entries for {row['edits']} edits")
    for label, index in (("oldest", 0), ("middle", len(entries) // 2), ("newest", len(entries) - 1)):
        ms, text = await timed(lambda: text_at(store, DOC, entries[index].seq))
        if text != texts[index]:
            raise RuntimeError(f"{kind}: the {label} version (seq {entries[index].seq}) rebuilt wrong")
        row[f"rebuild_{label}_ms"] = ms
    return entries


async def measure_retention(store, kind: str, now: float, newest_text: str, row: dict) -> None:
    from server.history.rebuild import text_at
    from server.history.retention import apply_retention

    row["retention_ms"], _ = await timed(lambda: apply_retention(store, DOC, now, KEEP_ALL_DAYS, HOURLY_DAYS), 1)
    row["history_bytes_retention"] = await store.history_bytes(DOC)
    row["versions_after_retention"], _ = await all_versions(store)
    newest = (await store.history(DOC, limit=1, newest_first=True))[0].seq
    if await text_at(store, DOC, newest) != newest_text:
        raise RuntimeError(f"{kind}: the newest version rebuilt wrong after retention")


async def bench_store(kind: str, edits: list[Edit], texts: dict[int, str], workdir: Path, redis_url) -> dict:
    """History off, then on (listing and rebuilding), then retention: the figures of one store."""
    row: dict = {"store": kind, "edits": len(edits)}
    plain = StoreUnderTest(kind, workdir, redis_url, "off")
    store, _ = await write_all(plain, edits, is_history_on=False)
    row["bytes_history_off"] = await plain.total_bytes()
    await store.close()

    full = StoreUnderTest(kind, workdir, redis_url, "on")
    store, row["write_s"] = await write_all(full, edits, is_history_on=True)
    row["checkpoints"] = await count_checkpoints(store)
    row["bytes_history_on"] = await full.total_bytes()
    row["history_bytes_on"] = await store.history_bytes(DOC)
    await measure_reads(store, kind, texts, row)
    # "now" just after the last edit: the 60 days cover keep-all, hourly and daily.
    await measure_retention(store, kind, edits[-1].at + 60.0, texts[len(edits) - 1], row)
    row["bytes_retention"] = await full.total_bytes()
    await store.close()
    for key in ("history_off", "history_on", "retention"):
        row[f"per_1000_{key}"] = row[f"bytes_{key}"] * 1000 / len(edits)
    for key in ("on", "retention"):  # the store's own count: entries (update + metadata) and checkpoints
        row[f"history_per_1000_{key}"] = row[f"history_bytes_{key}"] * 1000 / len(edits)
    return row


async def run(args) -> list[dict]:
    edits, texts = make_edits(args.edits, args.days, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        workdir = Path(tmp)
        for kind in args.stores:
            if kind == "redis" and args.redis_url is None:
                with redis_server(workdir) as url:
                    rows.append(await bench_store(kind, edits, texts, workdir, url))
            else:
                rows.append(await bench_store(kind, edits, texts, workdir, args.redis_url))
            print(f"{kind}: done", file=sys.stderr, flush=True)
    return rows


# --- the report ---------------------------------------------------------------------------------------------

COLUMNS = (  # (header, key, format)
    ("store", "store", "{}"),
    ("versions", "versions", "{}"),
    ("1st page ms", "first_page_ms", "{:.1f}"),
    ("all ms", "all_versions_ms", "{:.0f}"),
    ("oldest ms", "rebuild_oldest_ms", "{:.1f}"),
    ("middle ms", "rebuild_middle_ms", "{:.1f}"),
    ("newest ms", "rebuild_newest_ms", "{:.1f}"),
    ("B/1k off", "per_1000_history_off", "{:,.0f}"),
    ("B/1k on", "per_1000_history_on", "{:,.0f}"),
    ("B/1k retained", "per_1000_retention", "{:,.0f}"),
    ("after ret.", "versions_after_retention", "{}"),
)
LEGEND = """\
{edits:,} edits by 3 authors over {days:g} days; versions grouped with a {pause:g} s pause. 1st page: the newest
{page} versions; all: every version, {max_page} a page; oldest/middle/newest: rebuilding that version's text
(nearest checkpoint + replay); all times are medians of {repeats} runs. B/1k: bytes stored per 1,000 edits
(SQLite: used pages; Redis: MEMORY USAGE of the document's keys, its log trimmed to the snapshot as a minute
later) with history off, on (everything kept), and after retention (all kept {keep} days, hourly to {hourly},
daily beyond); after ret.: versions left."""


def print_report(rows: list[dict], header: dict, args) -> None:
    machine = header["machine"]
    print(f"\nhistory bench {header['date']}  {machine['cpu']} ×{machine['nproc']}  Python {machine['python']}  "
          f"load average before/after {header['loadavg_before']} / {header['loadavg_after']}")
    print(LEGEND.format(edits=args.edits, days=args.days, pause=PAUSE_S, page=FIRST_PAGE, max_page=MAX_PAGE,
                        keep=KEEP_ALL_DAYS, hourly=HOURLY_DAYS, repeats=REPEATS))  # fmt: skip
    cells = [[fmt.format(row[key]) for _, key, fmt in COLUMNS] for row in rows]
    widths = [max(len(title), *(len(line[i]) for line in cells)) for i, (title, _, _) in enumerate(COLUMNS)]
    print("| " + " | ".join(title.rjust(w) for (title, _, _), w in zip(COLUMNS, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in cells:
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(line, widths)) + " |")


def machine_info() -> dict:
    import platform

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: the machine is shared, and the timings are only as good as its quiet."""
    with contextlib.suppress(OSError):
        return [float(part) for part in Path("/proc/loadavg").read_text().split()[:3]]
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edits", type=int, default=100_000, help="edits in the document")
    p.add_argument("--days", type=float, default=60.0, help="days the fake clock spans")
    p.add_argument("--stores", default="sqlite,redis", help="comma-separated: sqlite, redis")
    p.add_argument("--redis-url", help="an existing Redis to use (default: start a throwaway redis-server)")
    p.add_argument("--seed", type=int, default=20)
    out = os.environ.get("OUT")
    p.add_argument("--json", type=Path, default=Path(out) / "history.json" if out else None,
                   help="write the results here (default: $OUT/history.json when $OUT is set)")  # fmt: skip
    args = p.parse_args(argv)
    args.stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    if not args.stores or not set(args.stores) <= {"sqlite", "redis"}:
        p.error("--stores must be sqlite, redis or both")
    if args.edits < 3 or args.days <= 0:
        p.error("--edits must be at least 3 and --days positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    header = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"edits": args.edits, "days": args.days, "seed": args.seed, "pause_s": PAUSE_S,
                   "keep_all_days": KEEP_ALL_DAYS, "hourly_days": HOURLY_DAYS},  # fmt: skip
    }
    header["loadavg_before"] = load_average()
    rows = asyncio.run(run(args))
    header["loadavg_after"] = load_average()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    print_report(rows, header, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
