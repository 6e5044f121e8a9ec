"""Running a bench module the way its docstring says (`python -m bench.<name> ...`) from a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(name: str, *args: str, timeout: float = 120) -> str:
    """Runs `python -m bench.<name> args` in the repository root; fails the test with the bench's stderr when it
    fails, else returns what it printed."""
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout
