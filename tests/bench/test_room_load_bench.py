"""bench/room_load.py runs end to end at a low rate and reports every figure. Plumbing only: no timing is
asserted, but the load must be what it says (the bench raises if the room closed a typist or the document
lacks a keystroke)."""

from __future__ import annotations

import json

from tests.support.benches import run_bench


def test_a_short_run_reports_each_figure(tmp_path):
    out = tmp_path / "room_load.json"
    printed = run_bench("room_load", "--rate", "400", "--seconds", "0.5", "--typists", "5", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["edits"] == 200 and report["typists"] == 5
    assert report["cpu_us_per_edit"] > 0 and report["handle_us_per_edit"] > 0
    assert "MainThread" in report["threads_us_per_edit"]
    # Each edit goes to the 4 other typists, in one frame each or within a merged one.
    assert 0 < report["frames_per_edit"] <= 4
    assert printed.strip().splitlines()[-1].startswith("frames per edit")


def test_with_cursors_each_keystroke_brings_its_cursor(tmp_path):
    out = tmp_path / "room_load.json"
    run_bench("room_load", "--rate", "400", "--seconds", "0.5", "--typists", "5", "--cursors", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["cursors"] is True
    # Each edit and each cursor go to the 4 other typists: more than the edits alone, at most both; a cursor
    # that follows its keystroke goes in the keystroke's write.
    assert 4 < report["frames_per_edit"] <= 8
    assert 0 < report["writes_per_edit"] < report["frames_per_edit"]
