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

ROOT = Path(__file__).resolve().parents[2]
NUM_EDITS = 600


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_tiny_run_reports_both_stores(tmp_path):
    out = tmp_path / "history.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.history", "--edits", str(NUM_EDITS), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
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
    lines = run.stdout.strip().splitlines()
    assert lines[-4].startswith("| ") and "store" in lines[-4]
    assert [line.split("|")[1].strip() for line in lines[-2:]] == ["sqlite", "redis"]
