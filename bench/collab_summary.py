"""What the collaboration benchmark concludes: each run's figures, their medians over repeats, the verdicts.

Every (repeat, server, scenario) is one Run on a fresh server. A run's figures are
flat numbers; a server's figure is the median over its repeats (the lower median,
so it is a value one run measured: with an even count, the lower of the middle two).
Runs that could not measure a figure (NaN: a step that could not run) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collab_config import BASELINES, GOAL_P99_MS, GOAL_SPEEDUP, NOISY_CPU, BenchConfig, step_holds
from collab_step import StepResult

NAN = float("nan")


@dataclass
class Run:
    repeat: int
    server: str  # the label: "redraft", "redraft-off", "yws", ...
    scenario: str
    result: object  # the scenario's result (StepResult, RampResult, StormResult, IdleResult); None if none
    error: str = ""  # why the server or the scenario failed, if it did


def _step_figures(step: StepResult, config: BenchConfig) -> dict[str, float]:
    return {
        "p50_ms": step.p50_ms,
        "p99_ms": step.p99_ms,
        "server_cpu": step.server_cpu,
        "server_cpu_ms_per_edit": step.server_cpu * 1e3 / step.achieved_rate if step.achieved_rate else NAN,
        "loadgen_cpu": step.loadgen_cpu,
        "missing": step.missing,
        "disconnects": step.disconnects,
        "holds": float(step_holds(step, config)),
    }


def _ramp_figures(ramp, config: BenchConfig) -> dict[str, float]:
    return {
        "sustained_rate": ramp.sustained_rate,
        "is_ceiling": float(ramp.is_ceiling),
        "loadgen_cpu": max((s.loadgen_cpu for s in ramp.steps if not math.isnan(s.loadgen_cpu)), default=NAN),
    }


def _storm_figures(storm, config: BenchConfig) -> dict[str, float]:
    after = {f"rss_{seconds}s_mib": rss for seconds, rss in storm.rss_after_mib.items()}
    return {
        "synced_ms": storm.synced_ms,
        "unsynced": storm.unsynced,
        "rss_before_mib": storm.rss_before_mib,
        "rss_peak_mib": storm.rss_peak_mib,
        **after,
        "server_cpu_s": storm.server_cpu_s,
        "loadgen_cpu": storm.loadgen_cpu,
    }


def _idle_figures(idle, config: BenchConfig) -> dict[str, float]:
    return {
        "kib_per_connection": idle.kib_per_connection,
        "failed": idle.failed,
        "rss_before_mib": idle.rss_before_mib,
        "rss_after_mib": idle.rss_after_mib,
        "loadgen_cpu": idle.loadgen_cpu,
    }


FIGURES = {"room": _step_figures, "ramp": _ramp_figures, "docs": _step_figures, "storm": _storm_figures,
           "idle": _idle_figures}  # fmt: skip


def figures(run: Run, config: BenchConfig) -> dict[str, float]:
    return {} if run.result is None else FIGURES[run.scenario](run.result, config)


def median_low(values) -> float:
    measured = sorted(v for v in values if v is not None and not math.isnan(v))
    return measured[(len(measured) - 1) // 2] if measured else NAN


def medians(runs: list[Run], config: BenchConfig) -> dict[str, dict[str, dict[str, float]]]:
    """scenario -> server -> figure -> the median over that server's repeats."""
    labels = [label for _, _, label in config.runs()]
    table: dict = {}
    for scenario in config.scenarios:
        table[scenario] = {}
        for label in labels:
            per_run = [figures(r, config) for r in runs if r.scenario == scenario and r.server == label]
            keys = dict.fromkeys(key for figs in per_run for key in figs)
            table[scenario][label] = {key: median_low(figs.get(key) for figs in per_run) for key in keys}
    return table


def median_room_steps(runs: list[Run], config: BenchConfig) -> dict[str, list[StepResult]]:
    """Per server, the room step of the repeat with the median p99 (the one the summary quotes)."""
    chosen = {}
    for _, _, label in config.runs():
        steps = [r.result for r in runs if r.scenario == "room" and r.server == label and r.result is not None]
        measured = sorted((s for s in steps if not math.isnan(s.p99_ms)), key=lambda s: s.p99_ms)
        if measured or steps:
            chosen[label] = [measured[(len(measured) - 1) // 2] if measured else steps[0]]
    return chosen


def summarize(runs: list[Run], table: dict, config: BenchConfig) -> dict:
    summary: dict = {}
    ramp = table.get("ramp", {})
    if ramp:
        summary["sustained_rate"] = {label: figs.get("sustained_rate", NAN) for label, figs in ramp.items()}
        summary["sustained_is_ramp_ceiling"] = {label: figs.get("is_ceiling") == 1.0 for label, figs in ramp.items()}
        baseline = next((name for name in BASELINES if name in ramp), None)
        rates, at_ceiling = summary["sustained_rate"], summary["sustained_is_ramp_ceiling"]
        # A baseline that held the whole ramp has no known limit, so there is no ratio to give.
        if "redraft" in rates and baseline and rates[baseline] > 0 and not at_ceiling[baseline]:
            summary["speedup_over"] = baseline
            summary["speedup"] = rates["redraft"] / rates[baseline]
            summary["speedup_met"] = summary["speedup"] >= GOAL_SPEEDUP
    room = table.get("room", {})
    if "redraft" in room:
        summary["goal_p99_ms"] = room["redraft"].get("p99_ms", NAN)
        summary["goal_p99_met"] = summary["goal_p99_ms"] < GOAL_P99_MS and room["redraft"].get("holds") == 1.0
    if "redraft" in room and "redraft-off" in room:
        # The write path's cost of version history: the same goal step with --history on and off.
        summary["history_off_goal_p99_ms"] = room["redraft-off"].get("p99_ms", NAN)
        summary["history_p99_delta_ms"] = summary["goal_p99_ms"] - summary["history_off_goal_p99_ms"]
    steps = list(_steps(runs))
    summary["generator_saturated_steps"] = [
        name for name, s in steps if s.loadgen_cpu > 0.9 or s.loop_lag_p99_ms > 5.0
    ]
    summary["noisy_steps"] = [name for name, s in steps if s.other_cpu > NOISY_CPU]
    summary["failed_runs"] = [f"{r.server} {r.scenario} #{r.repeat + 1}: {r.error}" for r in runs if r.error] + [
        f"{name}: {s.error}" for name, s in steps if s.error
    ]
    return summary


def _steps(runs: list[Run]):
    """(name, step) for every load step the runs measured: room, ramp and docs."""
    for run in runs:
        if run.result is None:
            continue
        name = f"{run.server} {run.scenario} #{run.repeat + 1}"
        if run.scenario in ("room", "docs"):
            yield name, run.result
        elif run.scenario == "ramp":
            yield from ((f"{name}@{s.offered_rate:.0f}", s) for s in run.result.steps)
