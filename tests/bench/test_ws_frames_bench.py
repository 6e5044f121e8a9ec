"""bench/ws_frames.py runs and reports a row per reader. Plumbing only: no timing is asserted; the bench itself
checks that every reader handed on every frame's payload, unmasked."""

from __future__ import annotations

from tests.support.benches import run_bench


def test_it_reports_each_reader():
    lines = run_bench("ws_frames", "--frames", "200").strip().splitlines()
    assert lines[0].split()[0] == "reader"
    assert [line[:28].strip() for line in lines[1:]] == [
        "websockets' parser", "FrameReader", "LinkProtocol.data_received"
    ]
