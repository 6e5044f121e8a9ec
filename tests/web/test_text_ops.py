"""Runs the Node unit tests of the binding's pure text operations (diff and delta mapping)."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.processes import ROOT


def test_text_ops():
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    result = subprocess.run(
        [node, "--test", "--test-reporter=dot", str(ROOT / "tests" / "web" / "text_ops.test.mjs")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
