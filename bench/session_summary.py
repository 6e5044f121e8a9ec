"""The one table of a GPU session (bench/gpu_session.sh): how each step ended, then its figures against the goals.

    python bench/session_summary.py WORK_DIR    # prints Markdown; gpu_session.sh writes it to $OUT/summary.md

Reads what the steps left in the work folder (steps.txt, gpu.csv, the benchmarks' JSON) and says plainly what
is missing, so a session cut short still reports what it measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Issue 16's goals: one H100, 256-token canvas, 16 steps, batch 1 (tokens/s), and batch 4's aggregate.
TOKENS_GOAL = {"none": 900, "fp8": 1850, "nf4": 3000}
BATCH4_GAIN_GOAL = 3.0
PEAK_GIB_GOAL = 60e9 / 2**30
# What a step's exit status means (timeout -k sends INT, then KILL)
ENDINGS = {0: "ok", 124: "stopped at its limit", 137: "killed at its limit", 130: "interrupted", 2: "refused"}


def load(work: Path, name: str) -> dict | None:
    try:
        return json.loads((work / name).read_text())
    except (OSError, ValueError):
        return None


def steps(work: Path) -> list[str]:
    lines = ["| step | exit | seconds | limit | ended |", "|---|---|---|---|---|"]
    try:
        records = (work / "steps.txt").read_text().split("\n")
    except OSError:
        return ["no step has finished"]
    for record in filter(None, records):
        name, rc, seconds, limit = record.split()
        lines.append(f"| {name} | {rc} | {seconds} | {limit} | {ENDINGS.get(int(rc), 'failed: see its log')} |")
    return lines


def engine(work: Path) -> list[str]:
    rows, scheduler, validation, reference = [], [], [], None
    for run in ("baseline", "fast"):
        report = load(work, f"engine-{run}.json")
        if report:
            rows += [{**row, "run": run} for row in report.get("native", [])]
            scheduler += report.get("scheduler", [])
            validation += report.get("validation", [])
            reference = report.get("reference") or reference
    if not rows:
        return ["engine: not measured"]
    lines = ["| run | weights | kernels | batch | ms/step | tok/s @16 | goal @16 | peak GiB |",
             "|---|---|---|---|---|---|---|---|"]
    single = {(r["format"], r["kernels"]): r for r in rows if r["batch"] == 1}
    for row in rows:
        ms = row.get("graph_ms", row["eager_ms"])
        goal = TOKENS_GOAL.get(row["format"]) if row["batch"] == 1 else None
        if row["batch"] == 4 and (row["format"], row["kernels"]) in single:
            gain = row["tok_s_16"] / single[row["format"], row["kernels"]]["tok_s_16"]
            goal_cell = f"{gain:.1f}x batch 1 (goal {BATCH4_GAIN_GOAL:g}x)"
        else:
            goal_cell = f"{goal} {'met' if row['tok_s_16'] >= goal else 'not met'}" if goal else ""
        peak = row.get("peak_gib")
        over = row["batch"] == 4 and peak and peak > PEAK_GIB_GOAL
        peak_cell = (f"{peak:.1f}" + (f" (goal <= {PEAK_GIB_GOAL:.1f})" if over else "")) if peak else ""
        lines.append(f"| {row['run']} | {row['format']} | {row['kernels']} | {row['batch']} | {ms:.1f} | "
                     f"{row['tok_s_16']:.0f} | {goal_cell} | {peak_cell} |")
    for row in scheduler:
        lines.append(f"scheduler end to end, {row['format']}, kernels {row['kernels']}, batch {row['batch']}: "
                     f"{row['seconds'] * 1e3:.0f} ms = {row['tok_s']:.0f} tok/s")
    if reference:
        lines.append(f"transformers generate, batch 1, {reference['steps']} steps: {reference['tok_s']:.0f} tok/s")
    for row in validation:
        for step in sorted(key for key in row if key.startswith("step")):
            cell = row[step]
            lines.append(f"kernels on vs off, {row['format']}, batch {row['batch']}, step {step[4:]}: argmax agree "
                         f"{100 * cell['argmax_agree']:.2f}%, entropy max diff {cell['entropy_max_diff']:.1e}")
    return lines


def kernels(work: Path) -> list[str]:
    lines = []
    head = load(work, "head-bench.json")
    for row in (head or {}).get("rows", []):
        lines.append(f"head, batch {row['batch']}: {row['fused_ms']:.3f} ms fused, {row['reference_ms']:.3f} ms "
                     f"reference, argmax agree {100 * row['argmax_agree']:.2f}%")
    for row in (load(work, "kernels-moe.json") or {}).get("rows", []):
        tuned = f", tuned {row['tuned_ms']:.2f} ms" if "tuned_ms" in row else ""
        lines.append(f"MoE layer, {row['weights']}, batch {row['batch']}: {row['fused_ms']:.2f} ms = "
                     f"{row['fused_gb_per_s']:.0f} GB/s{tuned}, max rel error {row['max_rel_error']:.1e}")
    for row in (load(work, "kernels-attention.json") or {}).get("attention", []):
        if "fused_ms" in row:
            lines.append(f"attention, {row['layer']}, prefix {row['prefix']}, batch {row['batch']}: "
                         f"{row['fused_ms']:.3f} ms fused, {row['reference_ms']:.3f} ms reference")
    for row in (load(work, "kernels-linear.json") or {}).get("linear", []):
        tuned = f", tuned {row['tuned_ms']:.3f} ms" if "tuned_ms" in row else ""
        lines.append(f"projection {row['projection']}, {row['weights']}, batch {row['batch']}: "
                     f"{row['fused_ms']:.3f} ms fused, {row['reference_ms']:.3f} ms reference{tuned}, "
                     f"max rel error {row['max_rel_error']:.1e}")
    for kernel in ("moe", "linear"):
        if (work / f"installed-{kernel}.json").exists():
            lines.append(f"the {kernel} sweep's table was installed before the engine step "
                         f"(kernels/configs/{kernel}.json)")
    return lines or ["kernels: not measured"]


def summary(work: Path) -> str:
    try:
        device = (work / "gpu.csv").read_text().strip().splitlines()[-1]
    except (OSError, IndexError):
        device = "unknown device"
    parts = [f"# GPU session on {device}", "", *steps(work), "", *engine(work), "", *kernels(work)]
    return "\n".join(parts) + "\n"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(summary(Path(sys.argv[1])), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
