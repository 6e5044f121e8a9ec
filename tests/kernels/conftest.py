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


if os.environ.get("TRITON_INTERPRET") == "1":
    # Triton 3.6's interpreter holds a scalar as a 1-element array and turns it into a loop bound with
    # int(array), which numpy 2.4 refuses (triton-lang/triton#9171, fixed upstream by #9172 after 3.6).
    # kernels/attention.py loops over each row's own cached slots, bounds it loads: until the fix ships, take
    # the element explicitly (.item() still refuses a block of several).
    from triton.runtime import interpreter

    _patch_lang_tensor = interpreter._patch_lang_tensor

    def _patch_lang_tensor_with_scalar_index(tensor, scope):
        _patch_lang_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interpreter._patch_lang_tensor = _patch_lang_tensor_with_scalar_index
