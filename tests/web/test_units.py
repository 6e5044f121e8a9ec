"""Runs the Node unit tests of the editor's pure modules (word diff, canvas looks, presets, status lines)."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.processes import ROOT


def test_units():
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    result = subprocess.run(
        [node, "--test", "--test-reporter=dot", str(ROOT / "tests" / "web" / "units.test.mjs")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
