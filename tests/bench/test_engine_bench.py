"""bench/engine.py runs on the CPU end to end (tiny preset) and reports what the GPU session will read: a row
per batch with its step time and, with --breakdown, every part of the step. Speed is not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the engine benchmark needs the engine extra (torch)")

ROOT = Path(__file__).resolve().parents[2]


def test_the_cpu_run_reports_every_part_of_the_step(tmp_path):
    out = tmp_path / "engine.json"
    subprocess.run(
        [sys.executable, "bench/engine.py", "--breakdown", "--no-reference", "--batches", "1,2", "--repeats", "1",
         "--json", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=600,
    )
    report = json.loads(out.read_text())
    assert [row["batch"] for row in report["native"]] == [1, 2]
    for row in report["native"]:
        assert row["eager_ms"] > 0 and row["tok_s_16"] > 0
        parts = row["parts"]
        assert set(parts) == {"attention", "dense", "moe", "self_conditioning", "head", "sampler"}
        assert all(part["ms"] > 0 for part in parts.values())
        # bytes a part must read: the experts are the largest weights of every layer
        assert parts["moe"]["bytes"] > parts["dense"]["bytes"] > 0 and parts["sampler"]["bytes"] is None
    assert [row["batch"] for row in report["scheduler"]] == [1, 2]
