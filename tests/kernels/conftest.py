"""Kernel tests: on a GPU as compiled kernels; without one through Triton's interpreter, which the root
conftest switches on before anything imports triton."""

import os

import pytest

torch = pytest.importorskip("torch", reason="the kernels need the engine extra (torch)")
pytest.importorskip("triton", reason="the kernel tests need triton (the test extra)")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no CUDA device, and TRITON_INTERPRET=1 was not set before triton loaded", allow_module_level=True)


@pytest.fixture
def poisoned(monkeypatch):
    """torch.empty hands out NaN (floating point) or -1 (integers): whatever a kernel leaves unwritten poisons
    its result."""
    empty = torch.empty

    def poisoned_empty(*shape, **kwargs):
        tensor = empty(*shape, **kwargs)
        return tensor.fill_(float("nan") if tensor.is_floating_point() else -1)

    monkeypatch.setattr(torch, "empty", poisoned_empty)

