"""Every kernel compiles at the real shapes with its default launch configuration for Hopper, Ada and Ampere,
fits each one's shared memory, and spills no register on Hopper; FP8 experts are refused before Ada, as
engine/runtime/ops.py says. Checked without a GPU (tests/kernels/offline_compile.py), in a process of its own
because this one runs the kernels through the interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.runtime.ops import FP8_CAPABILITY
from tests.kernels.offline_compile import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"head", "head draw", "head normalize", "attention sliding", "attention global",
            "norm 2816", "norm 2816 unscaled", "norm 256", "norm 512 unscaled", "norm+rope 256", "norm+rope 512",
            "ffn out", "qkv sliding", "qkv global", "attn residual", "router", "noise", "rope", "sampler advance",
            "gelu mul", "moe align counts", "moe align scatter", "moe top-k sum",
            *(f"linear {w}{g} batch {b}" for w in ("fp8", "nf4") for g in ("", " gated") for b in (1, 4)),
            *(f"moe {w} {p} batch {b}" for w in ("bf16", "fp8", "nf4") for p in ("gate/up", "down") for b in (1, 4))}


def test_every_kernel_compiles_for_each_gpu_within_its_shared_memory_and_registers():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "tests.kernels.offline_compile"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]  # Triton prints too
    assert {(row["arch"], row["kernel"]) for row in rows} == {(a, v) for a in ARCHITECTURES for v in VARIANTS}
    for row in rows:
        fp8_unsupported = " fp8" in row["kernel"] and (row["arch"] // 10, row["arch"] % 10) < FP8_CAPABILITY
        if fp8_unsupported:
            assert "fp8e4nv not supported" in row["refused"], row
            continue
        assert "refused" not in row, row
        assert 0 <= row["shared"] <= ARCHITECTURES[row["arch"]], row
        if row["arch"] == 90:
            # a spill at the default configuration is local-memory traffic in every program, every step
            assert row["spill_bytes"] == 0 and 0 < row["registers"] <= 255, row
