"""bench/history.py runs end to end on a tiny document, both stores, and reports every figure the README table
reads. Plumbing only: no timing is asserted, but every rebuilt version was checked against the text the
document had then (the bench raises otherwise) and the storage figures must be ordered as history makes them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.benches import run_bench

ROOT = Path(__file__).resolve().parents[2]
NUM_EDITS = 600


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_tiny_run_reports_both_stores(tmp_path):
    out = tmp_path / "history.json"
    printed = run_bench("history", "--edits", str(NUM_EDITS), "--json", str(out), timeout=300)
    report = json.loads(out.read_text())
    assert report["config"]["edits"] == NUM_EDITS and report["machine"]["nproc"] >= 1
    assert [row["store"] for row in report["results"]] == ["sqlite", "redis"]
    for row in report["results"]:
        assert row["edits"] == NUM_EDITS
        # 3 authors taking turns, with pauses: many versions, far fewer than edits, fewer still once folded.
        assert 3 <= row["versions"] < NUM_EDITS
        assert 1 <= row["versions_after_retention"] < row["versions"]
        for key in ("first_page_ms", "all_versions_ms", "rebuild_oldest_ms", "rebuild_middle_ms", "rebuild_newest_ms"):
            assert row[key] > 0, key
        # History keeps every update beside the log and snapshot; retention folds most of it away again.
        assert row["per_1000_history_on"] > row["per_1000_history_off"] > 0
        assert 0 < row["history_bytes_retention"] < row["history_bytes_on"]
    # The table comes last, one line per store.
    lines = printed.strip().splitlines()
    assert lines[-4].startswith("| ") and "store" in lines[-4]
    assert [line.split("|")[1].strip() for line in lines[-2:]] == ["sqlite", "redis"]


def test_collab_runs_redraft_with_history_on_and_off(tmp_path):
    """bench/collab.py --history on,off starts Redraft twice (serve --history on, then off) on a tiny load and
    reports the goal step's p99 of each; whether they hold is the machine's business, not asserted."""
    out = tmp_path / "collab.json"
    run = subprocess.run(
        [sys.executable, "bench/collab.py", "--servers", "redraft", "--history", "on,off", "--clients", "3",
         "--recorders", "1", "--rate", "5", "--duration", "1", "--step-duration", "1", "--warmup", "0.2",
         "--drain", "0.5", "--ramp", "", "--ramp-down", "", "--quiet-wait", "0", "--retries", "0",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["history"] == ["on", "off"]
    assert list(report["results"]) == ["redraft", "redraft-off"]
    assert [len(steps) for steps in report["results"].values()] == [1, 1]
    for (step,) in report["results"].values():
        assert step["clients"] == 3 and step["offered_rate"] == 15 and step["error"] in ("", None)
    summary = report["summary"]
    assert summary["history_p99_delta_ms"] == summary["goal_p99_ms"] - summary["history_off_goal_p99_ms"]
    assert "version history's cost at the goal step" in run.stdout
