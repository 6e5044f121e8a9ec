"""bench/update_merge.py runs and reports a row per size. Plumbing only: no timing is asserted; the bench
itself checks that merge_all makes the update yrs' own merge makes."""

from __future__ import annotations

from tests.support.benches import run_bench


def test_it_reports_each_size():
    lines = run_bench("update_merge", "--sizes", "3,40").strip().splitlines()
    assert lines[0].split() == ["updates", "yrs", "at", "once", "merge_all"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "40"]
