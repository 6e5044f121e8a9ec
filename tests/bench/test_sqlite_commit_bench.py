"""bench/sqlite_commit.py runs and reports both ways of writing an append. Plumbing only: no timing is asserted."""

from __future__ import annotations

from tests.support.benches import run_bench


def test_it_reports_both_ways_of_committing_an_append():
    lines = run_bench("sqlite_commit", "--commits", "20", "--page-size", "1024").strip().splitlines()
    assert "1024 B pages" in lines[0]
    rows = [line.rsplit(None, 4) for line in lines[1:]]
    assert [row[0].strip() for row in rows] == ["four statements", "one statement"]
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)
