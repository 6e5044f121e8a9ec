"""The servers the collaboration benchmark compares, each started as a subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collab_dialect import YWebsocket

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def command(name: str, port: int, data_dir: Path, history: str = "on") -> list[str]:
    if name == "redraft":
        return [sys.executable, "-m", "server", "serve", "--port", str(port),
                "--data-dir", str(data_dir), "--log-level", "warning", "--history", history]  # fmt: skip
    if name == "baseline":
        return [sys.executable, str(REPO / "bench" / "baseline_server.py"), "--port", str(port)]
    raise ValueError(f"unknown server {name!r}")


class ServerProcess:
    def __init__(self, name: str, port: int, process: subprocess.Popen, log_path: Path, dialect=None):
        self.name = name  # the label in the report: "redraft", "baseline", or "redraft-off" (history off)
        self.port = port
        self.process = process
        self.log_path = log_path
        self.dialect = dialect or YWebsocket()

    @property
    def pid(self) -> int:
        return self.process.pid

    def ws_url(self, doc: str) -> str:
        return self.dialect.url(HOST, self.port, doc)

    def rss_bytes(self) -> int:
        """The server's resident memory now (VmRSS), from /proc."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.name} (pid {self.pid})")

    def is_healthy(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.is_healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def log_tail(self, num_lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-num_lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: Redraft flushes
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.asynccontextmanager
async def start_server(name: str, history: str = "on", label: str | None = None):
    """Starts `name`; Redraft records version history unless `history` is "off" (`label` names the run)."""
    label = label or name
    with tempfile.TemporaryDirectory(prefix=f"collab-{label}-") as tmp:
        port = free_port()
        log_path = Path(tmp) / "server.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command(name, port, Path(tmp) / "data", history), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        server = ServerProcess(label, port, process, log_path)
        try:
            await server.wait_ready()
            yield server
        finally:
            server.stop()
            errors = [line for line in log_path.read_text(errors="replace").splitlines() if "ERROR" in line]
            if errors:
                print(f"{label} logged {len(errors)} errors, the first: {errors[0]}", file=sys.stderr)
