"""bench/sqlite_commit.py runs and reports both page sizes. Plumbing only: no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_reports_both_page_sizes():
    run = subprocess.run(
        [sys.executable, "-m", "bench.sqlite_commit", "--commits", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["4096", "1024"]
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)
