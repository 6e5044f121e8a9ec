"""Every kernel compiles for Hopper (sm_90) at the real shapes with its default launch configuration, fits an
H100's shared memory and spills no register: checked without a GPU (tests/kernels/hopper.py), in a process of
its own because this one runs the kernels through the interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
H100_SHARED_BYTES = 227 * 1024  # the most one block may take on sm_90
VARIANTS = {"head", "head draw", "head normalize", "attention sliding", "attention global",
            *(f"moe {w} {p}" for w in ("bf16", "fp8", "nf4") for p in ("gate/up", "down"))}


def test_every_kernel_compiles_for_hopper_within_its_shared_memory_and_registers():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "tests.kernels.hopper"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    compiled = {row["kernel"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(compiled) == VARIANTS
    for name, row in compiled.items():
        assert 0 <= row["shared"] <= H100_SHARED_BYTES, name
        # a spill at the default configuration is local-memory traffic in every program, every step
        assert row["spill_bytes"] == 0 and 0 < row["registers"] <= 255, row
