"""What importing the server and the job protocol loads: no torch, no redis unless configured, no engine."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(code: str) -> set[str]:
    """The top-level packages in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("code", [
    "import server.room",
    # The default, embedded configuration: SQLite, no fan-out, the engine off.
    "import server.app; from server.config import ServerConfig; server.app.create_app(ServerConfig())",
])
def test_the_server_loads_neither_redis_nor_torch_nor_the_engine(code):
    loaded = loaded_after(code)
    assert "server" in loaded  # the probe really imported it
    assert loaded & {"redis", "torch", "engine", "worker", "httpx"} == set()


def test_the_job_protocol_loads_nothing_but_itself():
    loaded = loaded_after("import jobs.protocol, jobs.spec, jobs.cancel, jobs.progress_queue")
    assert "jobs" in loaded
    assert loaded & {"redis", "torch", "engine", "worker", "server", "httpx", "pycrdt"} == set()
