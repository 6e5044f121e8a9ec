"""Fixtures of the suites that run the model (tests/engine, training, worker): offline transformers, one CPU thread,
tiny random checkpoints written once per session. Each of those suites' conftest.py takes them from here."""

from __future__ import annotations

import importlib.util
import os
import warnings

import pytest

# Nothing may download at run time; set before transformers is first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if importlib.util.find_spec("torch") is None:
    # A collaboration-only install (no `engine` extra) runs the server suites; nothing here can run there.
    collect_ignore_glob = ["*.py"]
else:
    # transformers' generate calls torch.compiler.cudagraph_mark_step_begin() each step, whose first call
    # imports torch._inductor, which imports torch.utils.mkldnn, which raises a DeprecationWarning at import
    # time (torch 2.13: "`torch.jit.script_method` is deprecated"). Import it once here with exactly that
    # warning ignored, rather than filtering it for the whole suite.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script_method` is deprecated", DeprecationWarning)
        import torch._inductor.cudagraph_trees  # noqa: F401

    import torch

    from tests.engine.tiny import TinySpec, write_checkpoint

    DEFAULT_SPEC = TinySpec()

    @pytest.fixture(scope="session", autouse=True)
    def one_thread():
        """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spin-waiting
        made a 0.2 s generation take 40 s. Native and reference run in this process with the same setting."""
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(previous)

    @pytest.fixture(scope="session")
    def checkpoint(tmp_path_factory):
        """checkpoint(spec) -> directory of a transformers-saved tiny checkpoint (written once per spec)."""
        written: dict[TinySpec, object] = {}

        def get(spec: TinySpec = DEFAULT_SPEC):
            if spec not in written:
                written[spec] = write_checkpoint(spec, tmp_path_factory.mktemp("ckpt"))
            return written[spec]

        return get
