"""The collaboration benchmark's report: the table, the verdicts against the goals, machine facts."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from collab_config import GOAL_P99_MS, GOAL_SPEEDUP, NOISY_CPU, BenchConfig, step_holds
from collab_load import StepResult

NAME_WIDTH = 11  # "redraft-off": Redraft with --history off, beside "redraft" (history on)
# (header, width, cell) for each column after the server name
COLUMNS = (
    ("clients", 7, lambda s: f"{s.clients}"),
    ("rate/cl", 7, lambda s: f"{s.rate_per_client:g}"),
    ("offered", 8, lambda s: f"{s.offered_rate:.0f}"),
    ("achieved", 8, lambda s: f"{s.achieved_rate:.0f}"),
    ("p50 ms", 7, lambda s: f"{s.p50_ms:.2f}"),
    ("p99 ms", 7, lambda s: f"{s.p99_ms:.2f}"),
    ("max ms", 7, lambda s: f"{s.max_ms:.1f}"),
    ("missing", 7, lambda s: f"{s.missing}"),
    ("disc", 4, lambda s: f"{s.disconnects}"),
    ("frames/s", 8, lambda s: f"{s.frames_in_per_s:.0f}"),
    ("srv cpu", 7, lambda s: f"{s.server_cpu:.2f}"),
    ("gen cpu", 7, lambda s: f"{s.loadgen_cpu:.2f}"),
    ("others", 6, lambda s: f"{s.other_cpu:.2f}"),
    ("gen lag", 7, lambda s: f"{s.send_lag_p99_ms:.1f}"),
)
LEGEND = """\
latency = send → arrival at {recorders} recorder clients; holds = p99 ≤ {limit:g} ms, achieved ≥ 90% of
offered, nothing missing, no disconnect. Rates in edits/s on the document; frames/s received by all clients
together; cpu in cores (srv: server process, gen: load generator, others: the rest of the machine);
gen lag: p99 of how late edits left the generator, ms."""


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("pycrdt", "pycrdt-websocket", "websockets", "uvicorn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # pycrdt-websocket: only the baseline needs it (the bench extra)
            found[name] = None
    return found


def table_header() -> str:
    return f"{'server':{NAME_WIDTH}} " + " ".join(f"{title:>{width}}" for title, width, _ in COLUMNS) + "  holds"


def format_step(name: str, step: StepResult, holds: bool | None = None) -> str:
    verdict = "" if holds is None else ("yes" if holds else "NO")
    if step.attempts > 1:
        verdict += f" ({step.attempts} runs)"
    return f"{name:{NAME_WIDTH}} " + " ".join(f"{cell(step):>{width}}" for _, width, cell in COLUMNS) + f"  {verdict}"


def sustained_rate(steps: list[StepResult], config: BenchConfig) -> float:
    return max((s.offered_rate for s in steps if step_holds(s, config)), default=0.0)


def summarize(results: dict[str, list[StepResult]], config: BenchConfig) -> dict:
    sustained = {name: sustained_rate(steps, config) for name, steps in results.items()}
    # The last step ran at the top of the ramp and held: the real limit is higher than offered.
    at_ceiling = {
        name: steps[-1].offered_rate >= config.top_rate and step_holds(steps[-1], config)
        for name, steps in results.items()
    }
    summary: dict = {"sustained_rate": sustained, "sustained_is_ramp_ceiling": at_ceiling}
    if "redraft" in results:
        goal = results["redraft"][0]
        summary["goal_p99_ms"] = goal.p99_ms
        summary["goal_p99_met"] = goal.p99_ms < GOAL_P99_MS and step_holds(goal, config)
    # A baseline that held the whole ramp has no known limit, so there is no ratio to give.
    if "redraft" in sustained and sustained.get("baseline", 0) > 0 and not at_ceiling["baseline"]:
        summary["speedup"] = sustained["redraft"] / sustained["baseline"]
        summary["speedup_met"] = summary["speedup"] >= GOAL_SPEEDUP
    if "redraft" in results and "redraft-off" in results:
        # The write path's cost of version history: the same goal step with --history on and off.
        off = results["redraft-off"][0]
        summary["history_off_goal_p99_ms"] = off.p99_ms
        summary["history_p99_delta_ms"] = results["redraft"][0].p99_ms - off.p99_ms
    summary["generator_saturated_steps"] = _steps_where(
        results, lambda s: s.loadgen_cpu > 0.9 or s.loop_lag_p99_ms > 5.0
    )
    summary["noisy_steps"] = _steps_where(results, lambda s: s.other_cpu > NOISY_CPU)
    return summary


def _steps_where(results: dict[str, list[StepResult]], predicate) -> list[str]:
    return [f"{name}@{s.offered_rate:.0f}" for name, steps in results.items() for s in steps if predicate(s)]


def print_report(results: dict[str, list[StepResult]], summary: dict, config: BenchConfig, header: dict) -> None:
    machine = header["machine"]
    documents = "one growing document" if config.is_same_doc else "a fresh document per step"
    history = "redraft-off: --history off" if len(config.history) > 1 else f"history {config.history[0]}"
    print(f"\ncollab bench {header['date']}  {machine['cpu']} ×{machine['nproc']}  Python {machine['python']}  "
          f"loop={header['loop']}  {documents}  {history}")
    print(LEGEND.format(recorders=config.num_recorders, limit=config.p99_limit_ms))
    print(table_header())
    for name, steps in results.items():
        for step in steps:
            print(format_step(name, step, step_holds(step, config)))
            if step.error:
                print(f"{'':{NAME_WIDTH}} {step.error}")
    print()
    _print_verdicts(summary, config)


def _print_verdicts(summary: dict, config: BenchConfig) -> None:
    rates, at_ceiling = summary["sustained_rate"], summary["sustained_is_ramp_ceiling"]
    print("highest sustained rate (edits/s on one document): "
          + ", ".join(f"{name} {'≥ ' if at_ceiling[name] else ''}{rate:.0f}" for name, rate in rates.items()))
    if "speedup" in summary:
        met = "met" if summary["speedup_met"] else "NOT met"
        bound = "≥ " if at_ceiling.get("redraft") else ""
        print(f"redraft / baseline: {bound}{summary['speedup']:.2f}× (goal ≥ {GOAL_SPEEDUP}×: {met})")
    elif "redraft" in rates and "baseline" in rates:
        why = "held the whole ramp" if at_ceiling["baseline"] else "held no step"
        print(f"redraft / baseline: the baseline {why}, so there is no ratio")
    if any(at_ceiling.values()):
        print("≥: held at the top of --ramp, so the real limit is higher "
              "(a client may send Redraft < 200 messages/s: raise --clients)")
    if "goal_p99_ms" in summary:
        met = "met" if summary["goal_p99_met"] else "NOT met"
        goal = f"goal {config.num_clients} clients × {config.rate:g}/s"
        print(f"{goal}: redraft p99 {summary['goal_p99_ms']:.2f} ms (goal < {GOAL_P99_MS:g} ms: {met})")
    if "history_off_goal_p99_ms" in summary:
        print(f"version history's cost at the goal step: p99 {summary['goal_p99_ms']:.2f} ms with it, "
              f"{summary['history_off_goal_p99_ms']:.2f} ms without ({summary['history_p99_delta_ms']:+.2f} ms)")
    if summary["generator_saturated_steps"]:
        print("note: the load generator was near saturation (cpu > 0.9 or loop lag p99 > 5 ms) at "
              + ", ".join(summary["generator_saturated_steps"]) + "; those latencies include its own delay")
    if summary["noisy_steps"]:
        print(f"note: other processes used > {NOISY_CPU} cores during " + ", ".join(summary["noisy_steps"])
              + "; rerun on a quiet machine before trusting those steps")
