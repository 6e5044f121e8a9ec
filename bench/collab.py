"""Benchmark of collaboration servers: Redraft against the servers people deploy (reported, never asserted).

Every server runs as a subprocess (`collab_servers.py`); the load comes from this
process (`collab_load.py`: the clients and how edits are marked and timed;
`ws_client.py`: a lean websocket client, so the generator stays well below one
core; `collab_dialect.py`: how each server frames the y-websocket protocol).

Scenarios (--scenarios, default all; `collab_room.py`, `collab_scenarios.py` say how):
  room   --clients × --rate edits/s on one document: fan-out p50/p99, server CPU, CPU ms per edit
  ramp   the per-client rate rises until p99 > --p99-limit-ms, a marker is missing or a client
         is dropped: the highest document rate that held
  docs   --docs documents × 2 clients × --docs-rate edits/s: p99 over all, server CPU
  storm  --storm-clients clients join a --storm-chars document at once: ms until all synced,
         the server's RSS before, at its peak, 1 s and 10 s after
  idle   --idle connections over --idle-docs documents: KiB of server RSS per connection

For each of --repeats repeats, for each server (the order rotated by one each repeat, so
no server always runs first), for each scenario, a fresh server process. The report's
table (last) holds each figure's median over the repeats; --json holds every run too.
The load generator's CPU is recorded everywhere: near one core, its latencies are its own.

The machine is shared, so each load step records the cores other processes used
("others"); before a step the run waits up to --quiet-wait s for a quiet machine, and a
room or ramp step that failed while others were busy is run again (--retries).

    .venv/bin/python bench/collab.py --quick --servers redraft          # under a minute
    .venv/bin/python bench/collab.py --servers redraft,baseline --json out.json
    .venv/bin/python bench/collab.py --servers redraft --scenarios storm,idle --repeats 5
    .venv/bin/python bench/collab.py --servers redraft --history on,off   # what version history costs
    .venv/bin/python bench/collab.py --scenarios room --cursors   # each keystroke followed by its cursor

Redraft records version history (`serve --history on`, its default) unless --history off; with --history
on,off it runs twice, "redraft" with history and "redraft-off" without, and the report compares the room
scenario's p99 (without --scenarios, that comparison runs the room scenario alone). In --json, "results" holds
per server the room step of the median repeat (the one the summary quotes); "runs" holds every run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from dataclasses import asdict
from pathlib import Path

from collab_config import SCENARIOS, BenchConfig
from collab_load import self_check
from collab_report import LEGEND, NAME_WIDTH, machine_info, print_report, table_header, versions
from collab_room import ramp, room
from collab_scenarios import docs, idle, storm
from collab_servers import command, start_server
from collab_summary import Run, figures, median_room_steps, medians, summarize

RUNNERS = {"room": room, "ramp": ramp, "docs": docs, "storm": storm, "idle": idle}
# A server that fails to start, or a scenario the server breaks, is recorded and the bench goes on.
RUN_ERRORS = (OSError, RuntimeError, TimeoutError)


async def run(config: BenchConfig) -> list[Run]:
    runs = []
    for repeat in range(config.num_repeats):
        for name, history, label in config.rotated_runs(repeat):
            for scenario in config.scenarios:
                try:
                    async with start_server(name, history, label) as server:
                        result = await RUNNERS[scenario](server, config)
                    done = Run(repeat, label, scenario, result)
                except RUN_ERRORS as exc:
                    done = Run(repeat, label, scenario, None, f"{type(exc).__name__}: {exc}")
                print(_progress(done, config), file=sys.stderr, flush=True)
                runs.append(done)
    return runs


def _progress(run: Run, config: BenchConfig) -> str:
    """One line per finished run: its figures (room and ramp steps printed their own lines already)."""
    cells = run.error or "  ".join(f"{key} {value:.4g}" for key, value in figures(run, config).items())
    return f"{run.server:{NAME_WIDTH}} {run.scenario} #{run.repeat + 1}: {cells}"


MODE_DEFAULTS = {  # flag: (full run, --quick)
    "repeats": (3, 1),
    "duration": (10.0, 3.0),
    "step_duration": (5.0, 2.0),
    "warmup": (1.0, 0.5),
    "drain": (2.0, 1.0),
    "ramp": ("20,40,60,80,100,120,140,160,180,200,240,300,360,440,520,620", "40,80,160,240,320,440"),
    "storm_clients": (200, 50),
    "retries": (1, 0),
    "quiet_wait": (5.0, 1.0),
}


def parse_args(argv=None) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="redraft,yws,hocuspocus,hocuspocus-sqlite,pycrdt", help="comma-separated server names")
    p.add_argument("--scenarios", help=f"comma-separated, of {','.join(SCENARIOS)} [all; with --history on,off: room]")
    p.add_argument("--repeats", type=int, help="runs of every server × scenario, each on a fresh server [3; quick 1]")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rate", type=float, default=10.0, help="edits/s per client in the goal step")
    p.add_argument("--duration", type=float, help="seconds measured in the room and docs steps [10; quick 3]")
    p.add_argument("--step-duration", type=float, help="seconds measured per ramp step [5; quick 2]")
    p.add_argument("--warmup", type=float, help="seconds sent, not measured, before each step [1; quick 0.5]")
    p.add_argument("--drain", type=float, help="seconds to wait for late edits after each step [2; quick 1]")
    p.add_argument("--ramp", help="per-client rates after the goal rate [%s; quick %s]" % MODE_DEFAULTS["ramp"])
    p.add_argument("--ramp-down", default="8,6,4,2", help="per-client rates tried when the goal rate fails")
    p.add_argument("--recorders", type=int, default=5, help="clients that time arrivals")
    p.add_argument("--p99-limit-ms", type=float, default=50.0, help="p99 above this: the step does not hold")
    p.add_argument("--retries", type=int, help="reruns of a step that failed on a busy machine [1; quick 0]")
    p.add_argument("--quiet-wait", type=float, help="seconds to wait for a quiet machine per step [5; quick 1]")
    p.add_argument("--docs", type=int, default=200, help="documents in the docs scenario")
    p.add_argument("--docs-rate", type=float, default=2.0, help="edits/s per client in the docs scenario")
    p.add_argument("--storm-clients", type=int, help="clients joining at once in the storm [200; quick 50]")
    p.add_argument("--storm-chars", type=int, default=1_000_000, help="characters of the storm's document")
    p.add_argument("--idle", type=int, default=1000, help="idle connections")
    p.add_argument("--idle-docs", type=int, default=100, help="documents the idle connections spread over")
    p.add_argument("--history", default="on",
                   help="Redraft's --history: on, off, or on,off to run it twice (the second as redraft-off)")
    p.add_argument("--same-doc", action="store_true",
                   help="run every ramp step on one document that keeps growing (default: a fresh one per step)")
    p.add_argument("--cursors", action="store_true",
                   help="every edit followed by its client's cursor, an awareness update, as Redraft's editor sends")
    p.add_argument("--quick", action="store_true",
                   help="one repeat, short steps, a coarse ramp, a smaller storm, no retries (under a minute)")
    p.add_argument("--json", type=Path, help="also write every run and the medians here")
    args = p.parse_args(argv)
    for name, (full, quick) in MODE_DEFAULTS.items():  # explicit flags win over --quick
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    history = _parse_names(args.history)
    if args.scenarios is None:  # history on,off compares the room scenario's p99
        args.scenarios = "room" if len(history) > 1 else ",".join(SCENARIOS)
    config = BenchConfig(
        servers=_parse_names(args.servers),
        num_clients=args.clients,
        rate=args.rate,
        duration_s=args.duration,
        step_duration_s=args.step_duration,
        warmup_s=args.warmup,
        drain_s=args.drain,
        ramp=_parse_rates(args.ramp),
        ramp_down=_parse_rates(args.ramp_down),
        num_recorders=args.recorders,
        p99_limit_ms=args.p99_limit_ms,
        num_retries=args.retries,
        is_same_doc=args.same_doc,
        cursors=args.cursors,
        quiet_wait_s=args.quiet_wait,
        history=history,
        scenarios=_parse_names(args.scenarios),
        num_repeats=args.repeats,
        num_docs=args.docs,
        docs_rate=args.docs_rate,
        storm_clients=args.storm_clients,
        storm_chars=args.storm_chars,
        idle_connections=args.idle,
        idle_docs=args.idle_docs,
    )
    for name in config.servers:
        command(name, 0, Path("data"))  # raises ValueError for a server it does not know
    return config, args


def _parse_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _parse_rates(text: str) -> tuple[float, ...]:
    return tuple(float(rate) for rate in _parse_names(text))


def redraft_flags() -> str:
    """The limits Redraft's bench command line raises (its --max-* flags)."""
    args = command("redraft", 0, Path("data"))
    return " ".join(f"{flag} {value}" for flag, value in zip(args, args[1:]) if flag.startswith("--max-"))


def _json_safe(value):
    """NaN (a step that could not run) becomes null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def main(argv=None) -> int:
    try:
        config, args = parse_args(argv)
    except ValueError as exc:
        print(f"collab.py: {exc}", file=sys.stderr)
        return 2
    self_check()
    try:
        import uvloop  # uvicorn[standard] brings it; the servers run on it too

        loop_factory, loop_name = uvloop.new_event_loop, "uvloop"
    except ImportError:
        loop_factory, loop_name = None, "asyncio"
    header = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "loop": loop_name,
        "redraft_flags": redraft_flags(),
    }
    if {"room", "ramp"} & set(config.scenarios):  # their steps print a line each as they run
        print(LEGEND.format(recorders=config.num_recorders, limit=config.p99_limit_ms), file=sys.stderr)
        print(table_header(), file=sys.stderr)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runs = runner.run(run(config))
    table = medians(runs, config)
    summary = summarize(runs, table, config)
    print_report(table, summary, config, header)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            **header,
            "config": asdict(config),
            "summary": summary,
            "medians": table,
            "results": {label: [asdict(s) for s in steps] for label, steps in median_room_steps(runs, config).items()},
            "runs": [asdict(r) for r in runs],
        }
        args.json.write_text(json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
