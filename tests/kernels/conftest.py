"""Kernel tests: on a GPU as compiled kernels; without one through Triton's interpreter, which the root
conftest switches on before anything imports triton."""

import os

import pytest

torch = pytest.importorskip("torch", reason="the kernels need the engine extra (torch)")
pytest.importorskip("triton", reason="the kernel tests need triton (the test extra)")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no CUDA device, and TRITON_INTERPRET=1 was not set before triton loaded", allow_module_level=True)
