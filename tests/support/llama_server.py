"""llama.cpp's OpenAI-compatible server (llama-cpp-python) on a free loopback port, serving a tiny GGUF model.

An implementation users run, independent of this project, for the interop tests of `--engine openai`. It
lives in a venv of its own, .venv-llama/ (its fastapi stack must not touch the project's pins), which
`./dev test` builds from tests/support/llama-requirements.txt; the model is written at start by
tests/support/tiny_gguf.py under that venv's Python: no download.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.processes import ROOT, free_port, wait_until

VENV = ROOT / ".venv-llama"
PYTHON = VENV / "bin" / "python"
MODEL_ID = "tiny-llama"  # what /v1/models lists (the server's --model_alias)
CONTEXT = 4096  # tokens: the model's and the server's context (llama.cpp's /v1/models does not say it)
REQUIRED_ENV = "REDRAFT_REQUIRE_LLAMA"  # set by ./dev test, which has just built the venv: never skip there


def missing_reason() -> str | None:
    """Why the server cannot run here (a reason for pytest.skip), or None when .venv-llama is installed."""
    if PYTHON.exists():
        return None
    reason = (f"{VENV.name}/ is missing: `./dev test` builds it (llama.cpp from source, minutes the first time), "
              f"or: python3 -m venv {VENV.name} && {VENV.name}/bin/pip install -r tests/support/llama-requirements.txt")
    if os.environ.get(REQUIRED_ENV):
        raise RuntimeError(reason)
    return reason


class LlamaServer:
    """`python -m llama_cpp.server` in a subprocess, with a random-weight model; `base_url` ends in /v1.

    Greedy requests (temperature 0) give the same text every time; sampled ones are seeded by `seed`.
    """

    def __init__(self, workdir: Path, seed: int = 0, api_key: str | None = None):
        self.workdir = workdir
        self.seed = seed
        self.api_key = api_key
        self.port = free_port()
        self.model_path = workdir / f"{MODEL_ID}-{seed}.gguf"
        self.log_path = workdir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return MODEL_ID

    def start(self, timeout: float = 60) -> "LlamaServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.model_path.exists():
            written = subprocess.run([PYTHON, "-m", "tests.support.tiny_gguf", self.model_path, str(self.seed)],
                                     cwd=ROOT, capture_output=True, text=True, timeout=60)
            if written.returncode != 0:
                raise RuntimeError(f"writing the tiny GGUF model failed: {written.stderr[-2000:]}")
        args = [PYTHON, "-m", "llama_cpp.server", "--model", self.model_path, "--model_alias", MODEL_ID,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(CONTEXT), "--seed", str(self.seed),
                # One thread: the model is tiny, and the test machine's cores are shared.
                "--n_threads", "1", "--n_threads_batch", "1",
                # By default a request that arrives during a stream ends that stream early with [DONE] and
                # no finish_reason; queue it instead, as vLLM does, so that concurrent redrafts both finish.
                "--interrupt_requests", "false"]
        if self.api_key is not None:
            args += ["--api_key", self.api_key]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._ready, timeout, f"llama.cpp's server on port {self.port} to list its model ({self.log_path})",
                   interval=0.1)
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"llama.cpp's server exited with {self.proc.returncode}: "
                               f"{self.log_path.read_text(errors='replace')[-2000:]}")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            return httpx.get(self.base_url + "/models", headers=headers, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
