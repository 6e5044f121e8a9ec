"""bench/sqlite_commit.py runs and reports both page sizes. Plumbing only: no timing is asserted."""

from __future__ import annotations

from tests.support.benches import run_bench


def test_it_reports_both_page_sizes():
    rows = [line.split() for line in run_bench("sqlite_commit", "--commits", "20").strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["4096", "1024"]
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)
