"""The collaboration benchmark's report: a line per step as it runs, the header, the table of medians, the
verdicts against the goals."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from collab_config import GOAL_P99_MS, GOAL_SPEEDUP, NOISY_CPU, BenchConfig
from collab_step import StepResult

NAME_WIDTH = 17  # "hocuspocus-sqlite"
NODE_DIR = Path(__file__).resolve().parent / "collab_node"  # one npm project per Node server, exact pins
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
One line per load step (room, ramp) as it runs: latency = send → arrival at {recorders} recorder clients;
holds = p99 ≤ {limit:g} ms, achieved ≥ 90% of offered, nothing missing, no disconnect. Rates in edits/s on the
document; frames/s received by all clients together; cpu in cores (srv: server process, gen: load generator,
others: the rest of the machine); gen lag: p99 of how late edits left the generator, ms."""


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
    manifests = sorted(NODE_DIR.glob("*/package.json"))
    for manifest in manifests:  # the Node servers' exact pins
        found.update(json.loads(manifest.read_text()).get("dependencies", {}))
    if manifests:  # and the Node that runs them
        try:
            found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        except OSError:
            found["node"] = None
    return found


def table_header() -> str:
    return f"{'server':{NAME_WIDTH}} " + " ".join(f"{title:>{width}}" for title, width, _ in COLUMNS) + "  holds"


def format_step(name: str, step: StepResult, holds: bool | None = None) -> str:
    verdict = "" if holds is None else ("yes" if holds else "NO")
    if step.attempts > 1:
        verdict += f" ({step.attempts} runs)"
    return f"{name:{NAME_WIDTH}} " + " ".join(f"{cell(step):>{width}}" for _, width, cell in COLUMNS) + f"  {verdict}"


# (scenario, figure, row title, format) for each row of the final table; cells are medians over repeats.
ROWS = (
    ("room", "p50_ms", "p50 ms", ".2f"),
    ("room", "p99_ms", "p99 ms", ".2f"),
    ("room", "server_cpu", "server CPU, cores", ".2f"),
    ("room", "server_cpu_ms_per_edit", "server CPU ms per edit", ".3f"),
    ("room", "loadgen_cpu", "load generator CPU, cores", ".2f"),
    ("room", "missing", "missing markers", ".0f"),
    ("ramp", "sustained_rate", "sustained edits/s", ".0f"),
    ("ramp", "loadgen_cpu", "load generator CPU (top step), cores", ".2f"),
    ("docs", "p50_ms", "p50 ms", ".2f"),
    ("docs", "p99_ms", "p99 ms", ".2f"),
    ("docs", "server_cpu", "server CPU, cores", ".2f"),
    ("docs", "loadgen_cpu", "load generator CPU, cores", ".2f"),
    ("docs", "missing", "missing markers", ".0f"),
    ("storm", "synced_ms", "ms until all synced", ".0f"),
    ("storm", "unsynced", "clients not synced", ".0f"),
    ("storm", "rss_before_mib", "RSS before, MiB", ".0f"),
    ("storm", "rss_peak_mib", "RSS peak, MiB", ".0f"),
    ("storm", "rss_1s_mib", "RSS 1 s after, MiB", ".0f"),
    ("storm", "rss_10s_mib", "RSS 10 s after, MiB", ".0f"),
    ("storm", "loadgen_cpu", "load generator CPU, cores", ".2f"),
    ("idle", "kib_per_connection", "KiB per connection", ".1f"),
    ("idle", "failed", "failed connections", ".0f"),
    ("idle", "loadgen_cpu", "load generator CPU (connecting), cores", ".2f"),
)


def scenario_lines(config: BenchConfig) -> list[str]:
    """What each scenario that runs does, with this run's sizes."""
    rates = ",".join(f"{rate:g}" for rate in (config.rate, *config.ramp))
    described = {
        "room": f"room: {config.num_clients} clients × {config.rate:g} edits/s on one document, "
                f"{config.duration_s:g} s measured",
        "ramp": f"ramp: {config.num_clients} clients, per-client rates {rates}, {config.step_duration_s:g} s each; "
                f"holds: p99 ≤ {config.p99_limit_ms:g} ms, ≥ 90% of the offered rate sent, none lost, no disconnect",
        "docs": f"docs: {config.num_docs} documents × 2 clients × {config.docs_rate:g} edits/s, "
                f"{config.duration_s:g} s measured",
        "storm": f"storm: {config.storm_clients} clients join a {config.storm_chars:,}-character document at once "
                 f"(its writer stays connected)",
        "idle": f"idle: {config.idle_connections} connections over {min(config.idle_docs, config.idle_connections)} "
                "documents; KiB: RSS after − before, per connection",
    }  # fmt: skip
    lines = [described[scenario] for scenario in config.scenarios]
    if config.cursors and {"room", "ramp", "docs"} & set(config.scenarios):
        lines.append("cursors: every edit followed by its client's cursor (an awareness update), in the same write")
    return lines


def _print_header(config: BenchConfig, header: dict) -> None:
    machine = header["machine"]
    print(f"\ncollab bench {header['date']}  {machine['cpu']} ×{machine['nproc']}  Python {machine['python']}  "
          f"loop={header['loop']}")
    print("versions: " + ", ".join(f"{name} {version}" for name, version in header["versions"].items() if version))
    if "redraft" in config.servers:
        history = "redraft-off: --history off" if len(config.history) > 1 else f"history {config.history[0]}"
        flags = header["redraft_flags"]
        limits = f"serve {flags} (limits raised so the bench measures speed, not policy)" if flags else "its limits"
        print(f"redraft: {limits}, {history}")
    print(f"medians of {config.num_repeats} repeat(s); a fresh server per server × scenario × repeat, servers "
          "rotated each repeat; cpu in cores")
    for line in scenario_lines(config):
        print("  " + line)


def print_report(table: dict, summary: dict, config: BenchConfig, header: dict) -> None:
    """The header, the verdicts and notes, and last the table of medians (Markdown, for the README)."""
    _print_header(config, header)
    _print_verdicts(summary, config)
    labels = [label for _, _, label in config.runs()]
    print("\n| scenario | figure | " + " | ".join(labels) + " |")
    print("|---|---|" + "---:|" * len(labels))
    for scenario, key, title, fmt in ROWS:
        if scenario not in table:
            continue
        cells = [_cell(table[scenario][label], key, fmt) for label in labels]
        print(f"| {scenario} | {title} | " + " | ".join(cells) + " |")


def _cell(figs: dict, key: str, fmt: str) -> str:
    value = figs.get(key)
    if value is None or value != value:  # not run, or no run measured it
        return "–"
    bound = "≥ " if key == "sustained_rate" and figs.get("is_ceiling") == 1.0 else ""
    return bound + format(value, fmt)


def _print_verdicts(summary: dict, config: BenchConfig) -> None:
    if "speedup" in summary:
        met = "met" if summary["speedup_met"] else "NOT met"
        bound = "≥ " if summary["sustained_is_ramp_ceiling"].get("redraft") else ""
        print(f"redraft / {summary['speedup_over']} sustained rate: {bound}{summary['speedup']:.2f}× "
              f"(goal ≥ {GOAL_SPEEDUP}×: {met})")
    if any(summary.get("sustained_is_ramp_ceiling", {}).values()):
        print("≥: held at the top of --ramp, so the real limit is higher")
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
    for failure in summary["failed_runs"]:
        print(f"failed: {failure}")
