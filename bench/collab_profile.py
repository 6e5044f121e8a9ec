"""Where Redraft's time goes under the collaboration bench's load (reported, never asserted).

N clients type into one document at a fixed rate (the bench's own load, `collab_load.py`) while
two profilers watch the server for the measured seconds:
- `perf record`: the server's CPU by library (the kernel, the interpreter, yrs, SQLite, uvloop);
- `py-spy record --gil`: the Python that holds the GIL, by part of the hot path (`PARTS`).

    .venv/bin/python bench/collab_profile.py                  # the room scenario: 50 clients x 10 edits/s
    .venv/bin/python bench/collab_profile.py --rate 100       # the ramp's top step that held
    .venv/bin/python bench/collab_profile.py --json out.json

Needs `perf` (Debian: linux-perf) and `py-spy` (pip install py-spy), and leave to attach to a process
(root, or kernel.yama.ptrace_scope=0). Profiling slows the server: read the shares, not the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from collab_load import Session
from collab_servers import start_server
from collab_step import StepResult

# A stack counts towards the first part whose function it holds (py-spy names a frame "Class.method (file:line)").
PARTS = (
    ("fan-out writes", ("Room._broadcast ", "Room._relay_awareness ")),
    ("store appends (SQLite commits)", ("SqliteStore._transaction ", "SqliteStore._commit_appends ")),
    # A checkpoint's replay runs in a worker thread, whose stack does not hold the task that asked for it.
    ("history housekeeping", ("HistoryRecorder._housekeep ", "HistoryRecorder.checkpoint ", "replay_state ")),
    ("vetting and CRDT apply", ("Room.handle ",)),
    ("websocket parsing", ("data_received ",)),
    ("flush and batching", ("Room._flush ", "SqliteStore.append ", "_settle (server/stores/")),
)
OTHER = "event loop and the rest"
LIBRARIES = (  # perf's DSO names, matched in order
    ("kernel", re.compile(r"kernel")),
    ("Python", re.compile(r"libpython|python3")),
    ("yrs (pycrdt)", re.compile(r"pycrdt")),
    ("SQLite", re.compile(r"sqlite")),
    ("uvloop", re.compile(r"^loop\.")),
    ("libc", re.compile(r"^libc")),
)


def tool(name: str) -> str | None:
    """`name` on the PATH, or beside this Python (py-spy installed into the virtual environment)."""
    beside = Path(sys.executable).with_name(name)
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def part_of(stack: str) -> str:
    for name, functions in PARTS:
        if any(function in stack for function in functions):
            return name
    return OTHER


def python_parts(raw: str) -> dict[str, float]:
    """Shares of py-spy's raw samples ("frame;frame;... count" per line) by part."""
    counts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[part_of(stack + " ")] += int(count)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name, _ in (*PARTS, (OTHER, ()))}


def library_shares(report: str) -> dict[str, float]:
    """Shares of `perf report --sort dso` lines ("  50.19%  [kernel.kallsyms]") by library."""
    shares: collections.Counter = collections.Counter()
    for line in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if match:
            dso = match.group(2)
            name = next((name for name, pattern in LIBRARIES if pattern.search(dso)), "other")
            shares[name] += float(match.group(1)) / 100
    return dict(shares)


async def profile(pid: int, seconds: int, folder: Path) -> tuple[dict, dict]:
    """Both profilers on `pid` for `seconds`; raises with a profiler's own words when one fails (without ptrace
    rights py-spy writes nothing, and every share would read 0 %)."""
    perf_data, spy_raw = folder / "perf.data", folder / "py-spy.txt"
    perf = await asyncio.create_subprocess_exec(
        tool("perf"), "record", "-F", "1999", "-p", str(pid), "-o", str(perf_data), "--", "sleep", str(seconds),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    spy = await asyncio.create_subprocess_exec(
        tool("py-spy"), "record", "--gil", "--nonblocking", "-r", "500", "-d", str(seconds), "-p", str(pid),
        "-f", "raw", "-o", str(spy_raw), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    for name, process, (_, stderr) in zip(("perf", "py-spy"), (perf, spy),
                                          await asyncio.gather(perf.communicate(), spy.communicate())):  # fmt: skip
        if process.returncode != 0:
            raise RuntimeError(f"{name} failed ({process.returncode}): {stderr.decode(errors='replace')[-500:]}")
    report = subprocess.run(
        [tool("perf"), "report", "-i", str(perf_data), "--sort", "dso", "--stdio", "-g", "none"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return library_shares(report), python_parts(spy_raw.read_text())


async def run(args) -> dict:
    async with start_server("redraft") as server:
        session = Session(server, "profile", args.clients, args.recorders)
        await session.connect()
        with tempfile.TemporaryDirectory(prefix="collab-profile-") as tmp:
            step_task = asyncio.create_task(session.run_step(args.rate, args.warmup, args.duration, args.drain))
            await asyncio.sleep(args.warmup)
            libraries, parts = await profile(server.pid, args.duration, Path(tmp))
            step: StepResult = await step_task
        await session.close()
    return {
        "clients": args.clients, "rate_per_client": args.rate, "seconds": args.duration,
        "p50_ms": step.p50_ms, "p99_ms": step.p99_ms, "server_cpu": step.server_cpu,
        "cpu_by_library": libraries, "python_by_part": parts,
    }  # fmt: skip


def report(result: dict) -> str:
    lines = [
        f"{result['clients']} clients x {result['rate_per_client']:g} edits/s, {result['seconds']:g} s profiled "
        f"(server {result['server_cpu']:.2f} cores, p99 {result['p99_ms']:.2f} ms under the profilers)",
        "CPU by library (perf): " + ", ".join(f"{k} {v:.0%}" for k, v in result["cpu_by_library"].items()),
        "Python holding the GIL, by part (py-spy --gil):",
        *(f"  {name:32} {share:5.0%}" for name, share in result["python_by_part"].items()),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--recorders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=10.0, help="edits/s per client")
    parser.add_argument("--duration", type=int, default=8, help="seconds profiled")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=2.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    missing = [name for name in ("perf", "py-spy") if tool(name) is None]
    if missing:
        print(f"collab_profile: {' and '.join(missing)} not installed (see --help)", file=sys.stderr)
        return 2
    result = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
