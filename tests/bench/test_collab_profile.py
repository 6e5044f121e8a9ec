"""bench/collab_profile.py's reading of the profilers' output (the profiling itself needs perf, py-spy and
ptrace rights that CI does not give: it is run by hand, and its figures are in the README)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from collab_profile import OTHER, library_shares, part_of, python_parts  # noqa: E402

LOOP = "Runner.run (asyncio/runners.py:118);"
FLUSH = LOOP + "Room._flush (server/room.py:466);"


def test_a_stack_counts_towards_its_most_specific_part():
    assert part_of(FLUSH + "Room._broadcast (server/room.py:479);Peer.send (server/peer.py:103)") == "fan-out writes"
    assert part_of(FLUSH + "HistoryRecorder.drafts (server/history/recorder.py:92)") == "flush and batching"
    receive = LOOP + "WebSocketsSansIOProtocol.data_received (uvicorn/x.py:199);"
    assert part_of(receive + "Frame.parse (websockets/frames.py:1)") == "websocket parsing"
    assert part_of(receive + "Room.handle (server/room.py:200);parse_update (server/updates.py:72)") == (
        "vetting and CRDT apply"
    )
    assert part_of("_worker (thread.py:81);SqliteStore._commit_appends (server/stores/sqlite.py:176)") == (
        "store appends (SQLite commits)"
    )
    replay = "_worker (thread.py:81);_WorkItem.run (thread.py:58);replay_state (server/history/checkpoints.py:47)"
    assert part_of(replay + ";replay (x.py:1);apply_all_unobserved (x.py:1)") == "history housekeeping"
    # The store's `_settle` is batching; the room's (keystrokes into yrs) is not, wherever it runs.
    assert part_of(LOOP + "_settle (server/stores/sqlite.py:560)") == "flush and batching"
    assert part_of(LOOP + "Room._compact (server/room.py:1);Room._settle (server/room.py:175)") == OTHER
    on_loop = LOOP + "SqliteStore._commit_soon (x.py:1);SqliteStore._transaction (server/stores/sqlite.py:1)"
    assert part_of(on_loop) == "store appends (SQLite commits)"  # a small append's commit, on the event loop
    assert part_of(LOOP) == OTHER
    assert part_of(LOOP + "Room._broadcasting_elsewhere (x.py:1)") == OTHER  # a name, not a prefix of one


def test_python_parts_are_shares_of_the_samples():
    raw = "\n".join([
        FLUSH + "Room._broadcast (server/room.py:479) 6",
        FLUSH + "merge_updates (pycrdt/_update.py:44) 2",
        LOOP + " 2",
        "not a sample line",
    ])  # fmt: skip
    parts = python_parts(raw)
    assert parts["fan-out writes"] == pytest.approx(0.6)
    assert parts["flush and batching"] == pytest.approx(0.2)
    assert parts[OTHER] == pytest.approx(0.2)
    assert sum(parts.values()) == pytest.approx(1.0)
    assert sum(python_parts("").values()) == 0  # nothing sampled: no shares, no division by zero


def test_library_shares_group_perfs_libraries():
    report = """
# Overhead  Shared Object
    50.19%  [kernel.kallsyms]
    34.31%  libpython3.11.so.1.0
     4.66%  libsqlite3.so.0.8.6
     3.43%  _pycrdt.abi3.so
     3.22%  loop.cpython-311-x86_64-linux-gnu.so
     0.40%  _asyncio.cpython-311-x86_64-linux-gnu.so
"""
    shares = library_shares(report)
    assert shares["kernel"] == pytest.approx(0.5019)
    assert shares["Python"] == pytest.approx(0.3431)
    assert shares["SQLite"] == pytest.approx(0.0466)
    assert shares["yrs (pycrdt)"] == pytest.approx(0.0343)
    assert shares["uvloop"] == pytest.approx(0.0322)
    assert shares["other"] == pytest.approx(0.0040)
