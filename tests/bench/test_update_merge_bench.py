"""bench/update_merge.py runs and reports a row per size. Plumbing only: no timing is asserted; the bench
itself checks that merge_all makes the update yrs' own merge makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_reports_each_size():
    run = subprocess.run(
        [sys.executable, "-m", "bench.update_merge", "--sizes", "3,40"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[0].split() == ["updates", "yrs", "at", "once", "merge_all"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "40"]
