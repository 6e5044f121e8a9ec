"""Running a bench module the way its docstring says (`python -m bench.<name> ...`), or a GPU-loan script's
--dry-run, from a test."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
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


def dry_run(script: str, out: Path, timeout: float, **env: str) -> tuple[str, dict[str, Path]]:
    """Runs `bash bench/<script> --dry-run` with $OUT at `out` (and `env`); fails the test with its stderr when it
    fails. Returns what it printed and the files it left in $OUT, each archive unpacked beside it (name -> path:
    the folder for an archive)."""
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env}
    run = subprocess.run(["bash", f"bench/{script}", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr[-2000:]
    left = {}
    for path in sorted(out.iterdir()):
        left[path.name] = path
        if path.name.endswith(".tar.gz"):
            unpacked = out.parent / f"{path.name}.unpacked"
            with tarfile.open(path) as archive:
                archive.extractall(unpacked, filter="data")
            left[path.name] = unpacked
    return run.stdout, left
