"""bench/gpu_session.sh's plumbing on the CPU (--dry-run): what a 15-minute GPU loan depends on, checked in CI.

The device returns at most 8 files from $OUT, so the session leaves two: the archive of every log and JSON,
packed after each step, and the summary table. A step over its limit is stopped and the others still run.
The dry run checks the kernels against the reference path too (float32, the interpreter): they must agree.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the session's engine steps need the engine extra (torch)")

from tests.support.benches import dry_run  # noqa: E402


@pytest.mark.timeout(400)  # about 40 s on an idle 2-core VM; the interpreter's kernels are slow under load
def test_the_dry_run_packs_every_step_into_two_files(tmp_path):
    out = tmp_path / "out"
    printed, left = dry_run("gpu_session.sh", out, 380)
    assert sorted(left) == ["session.tar.gz", "summary.md"]
    work = left["session.tar.gz"]
    ended = {line.split()[0]: int(line.split()[1]) for line in (work / "steps.txt").read_text().splitlines()}
    assert ended == {"overrun": 124, "head": 2, "engine-baseline": 0, "engine-fast": 0}
    assert "needs a CUDA device" in (work / "head.log").read_text()

    baseline = json.loads((work / "engine-baseline.json").read_text())
    assert [row["batch"] for row in baseline["native"]] == [1] and baseline["reference"]["tok_s"] > 0
    (validation,) = json.loads((work / "engine-fast.json").read_text())["validation"]
    for step in ("step1", "step2"):  # float32 through the interpreter: the kernels give the reference's tokens
        assert validation[step]["argmax_agree"] == 1.0 and validation[step]["canvas_agree"] == 1.0
        assert validation[step]["entropy_max_diff"] < 1e-4  # fp32 sums in another order: ~1e-6 seen

    summary = (out / "summary.md").read_text()
    assert "| overrun | 124 | " in summary and "stopped at its limit" in summary
    assert "kernels on vs off, none, batch 1, step 2: argmax agree 100.00%" in summary
    assert summary in printed  # printed last as well
