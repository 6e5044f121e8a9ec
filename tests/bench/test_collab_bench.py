"""bench/collab.py's scenarios run end to end against Redraft on a tiny load, and the report carries every figure.
Plumbing only: no timing is asserted, but everything must have arrived (no marker missing, every storm client
synced, no idle connection failed) and the memory figures must be real readings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from collab_config import BenchConfig  # noqa: E402
from collab_summary import median_low  # noqa: E402

NUM_DOCS, STORM_CLIENTS, STORM_CHARS, IDLE = 5, 5, 100_000, 20


def test_every_scenario_reports_its_figures(tmp_path):
    out = tmp_path / "collab.json"
    run = subprocess.run(
        [sys.executable, "bench/collab.py", "--servers", "redraft", "--repeats", "1", "--clients", "3",
         "--recorders", "1", "--rate", "5", "--duration", "1", "--step-duration", "0.5", "--warmup", "0.2",
         "--drain", "1", "--ramp", "10", "--ramp-down", "", "--quiet-wait", "0", "--retries", "0",
         "--docs", str(NUM_DOCS), "--storm-clients", str(STORM_CLIENTS), "--storm-chars", str(STORM_CHARS),
         "--idle", str(IDLE), "--idle-docs", "4", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = {r["scenario"]: r for r in report["runs"]}
    assert [r["scenario"] for r in report["runs"]] == ["room", "ramp", "docs", "storm", "idle"]
    assert all(r["server"] == "redraft" and r["error"] == "" for r in runs.values())

    room = runs["room"]["result"]
    assert room["clients"] == 3 and room["missing"] == 0 and room["disconnects"] == 0
    assert report["results"]["redraft"] == [room]  # one repeat: it is the median one
    assert [s["offered_rate"] for s in runs["ramp"]["result"]["steps"]] == [15, 30]

    docs = runs["docs"]["result"]
    assert docs["clients"] == 2 * NUM_DOCS and docs["offered_rate"] == 2 * NUM_DOCS * 2
    assert docs["missing"] == 0 and docs["disconnects"] == 0 and docs["num_samples"] > 0

    storm = runs["storm"]["result"]
    assert storm["clients"] == STORM_CLIENTS and storm["unsynced"] == 0 and storm["synced_ms"] > 0
    assert storm["doc_bytes"] >= STORM_CHARS
    assert 0 < storm["rss_before_mib"] <= storm["rss_peak_mib"]
    assert set(storm["rss_after_mib"]) == {"1", "10"} and min(storm["rss_after_mib"].values()) > 0

    idle = runs["idle"]["result"]
    assert idle["connections"] == IDLE and idle["docs"] == 4 and idle["connected"] == IDLE and idle["failed"] == 0
    assert idle["rss_before_mib"] > 0 and idle["rss_after_mib"] > 0 and idle["kib_per_connection"] is not None

    medians = report["medians"]
    # Per edit, from the server's CPU over the window. /proc counts it in 10 ms ticks, which 15 edits on a fast
    # machine may not fill: the reading can be 0, but it must be this run's own.
    per_edit = room["server_cpu"] * 1e3 / room["achieved_rate"]
    assert room["server_cpu"] >= 0 and medians["room"]["redraft"]["server_cpu_ms_per_edit"] == pytest.approx(per_edit)
    assert medians["ramp"]["redraft"]["sustained_rate"] == 30
    assert medians["storm"]["redraft"]["rss_10s_mib"] == storm["rss_after_mib"]["10"]
    assert medians["idle"]["redraft"]["failed"] == 0
    # The table of medians comes last, before the verdicts: one row per figure, one column per server.
    assert "| scenario | figure | redraft |" in run.stdout
    assert "| idle | KiB per connection |" in run.stdout


def test_with_cursors_every_edit_brings_its_cursor_and_the_recorders_see_them(tmp_path):
    out = tmp_path / "cursors.json"
    args = ["--servers", "redraft", "--scenarios", "room", "--repeats", "1", "--clients", "3", "--recorders", "1",
            "--rate", "5", "--duration", "1", "--warmup", "0.2", "--drain", "1", "--quiet-wait", "0", "--retries", "0"]
    plain = subprocess.run([sys.executable, "bench/collab.py", *args, "--json", str(tmp_path / "plain.json")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    run = subprocess.run([sys.executable, "bench/collab.py", *args, "--cursors", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plain.returncode == 0 == run.returncode, (plain.stderr + run.stderr)[-3000:]
    assert "cursors: every edit followed by its client's cursor" in run.stdout
    report, before = json.loads(out.read_text()), json.loads((tmp_path / "plain.json").read_text())
    (room,), (plain_room,) = [r["result"] for r in report["runs"]], [r["result"] for r in before["runs"]]
    assert room["error"] == "" and room["missing"] == 0 and room["disconnects"] == 0  # every marker and cursor
    assert report["config"]["cursors"] is True and before["config"]["cursors"] is False
    # Each client gets the others' cursors beside their edits: more frames than the edits alone bring.
    assert room["frames_in_per_s"] > 1.5 * plain_room["frames_in_per_s"]


def test_each_repeat_starts_with_another_server():
    config = BenchConfig(
        servers=("redraft", "baseline"), num_clients=2, rate=1, duration_s=1, step_duration_s=1, warmup_s=0,
        drain_s=0, ramp=(), ramp_down=(), num_recorders=1, p99_limit_ms=50, num_retries=0, quiet_wait_s=0,
        is_same_doc=False, history=("on", "off"), num_repeats=3,
    )  # fmt: skip
    orders = [[label for _, _, label in config.rotated_runs(r)] for r in range(3)]
    assert orders == [
        ["redraft", "redraft-off", "baseline"],
        ["redraft-off", "baseline", "redraft"],
        ["baseline", "redraft", "redraft-off"],
    ]


def test_the_median_is_a_measured_value_and_ignores_runs_that_measured_nothing():
    assert median_low([3.0, 1.0, 2.0]) == 2.0
    assert median_low([4.0, 1.0, float("nan"), 2.0, 3.0]) == 2.0  # the lower of the middle two
    assert median_low([None, float("nan")]) != median_low([None, float("nan")])  # NaN: nothing measured
