"""Kernel tests: on a machine without CUDA, Triton's interpreter runs them on the CPU. It must be chosen
before any kernel module is imported (triton.jit reads TRITON_INTERPRET when it wraps a function)."""

import os

import pytest

torch = pytest.importorskip("torch", reason="the kernels need the engine extra (torch)")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="the kernel tests need triton (the test extra)")
