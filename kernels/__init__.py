"""Triton kernels for the engine's hot paths, each with a PyTorch reference beside it."""

import os

if os.environ.get("TRITON_INTERPRET") == "1":
    # Tests and CPU benchmarks run the kernels through Triton's interpreter. Triton 3.6's holds a scalar as a
    # 1-element array and turns it into a loop bound with int(array), which numpy 2.4 refuses
    # (triton-lang/triton#9171, fixed upstream by #9172 after 3.6). kernels/attention.py loops over each row's
    # own cached slots, bounds it loads: until the fix ships, take the element explicitly (.item() still
    # refuses a block of several). Compiled kernels are untouched.
    from triton.runtime import interpreter

    _patch_lang_tensor = interpreter._patch_lang_tensor

    def _patch_lang_tensor_with_scalar_index(tensor, scope):
        _patch_lang_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interpreter._patch_lang_tensor = _patch_lang_tensor_with_scalar_index
