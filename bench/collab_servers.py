"""The servers the collaboration benchmark compares, each started as a subprocess on a free loopback port.

- redraft: `python -m redraft serve` (embedded SQLite, version history on unless asked off), its
  per-connection limits raised (`REDRAFT_BENCH_LIMITS`) so the ramp, storm and idle scenarios measure
  speed, not policy;
- yws: @y/websocket-server, the y-websocket reference backend, documents in memory;
- hocuspocus: @hocuspocus/server, in memory; hocuspocus-sqlite: the same with its SQLite extension,
  the database in the server's temp dir;
- pycrdt (alias baseline): pycrdt-websocket under uvicorn, no persistence (`baseline_server.py`).

The Node servers are small scripts in bench/collab_node/, one npm project each (see its README);
`ensure_node_servers` installs their locked dependencies on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collab_dialect import Hocuspocus, YWebsocket

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "bench" / "collab_node"
HOST = "127.0.0.1"
# Redraft through plain ASGI under each of uvicorn's websocket implementations (bench/redraft_asgi.py).
REDRAFT_ASGI = ("redraft-asgi-websockets-sansio", "redraft-asgi-websockets", "redraft-asgi-wsproto")
SERVERS = ("redraft", "yws", "hocuspocus", "hocuspocus-sqlite", "pycrdt", *REDRAFT_ASGI)
ALIASES = {"baseline": "pycrdt"}  # the name pycrdt-websocket had before the Node servers came
# npm project (a folder of NODE_DIR) of each Node server; the script is <project>/server.mjs
NODE_PROJECTS = {"yws": "yws", "hocuspocus": "hocuspocus", "hocuspocus-sqlite": "hocuspocus"}
# The packages whose versions the report names, per npm project.
NODE_PACKAGES = {"yws": ("@y/websocket-server", "yjs"),
                 "hocuspocus": ("@hocuspocus/server", "@hocuspocus/extension-sqlite", "yjs")}  # fmt: skip
# Redraft's per-connection limits for the bench (its defaults close a client above 200 messages/s, and
# refuse the storm's and idle scenario's connections from one address); the report's header names them.
REDRAFT_BENCH_LIMITS = {
    "max-messages-per-s": 100_000,
    "max-message-burst": 100_000,
    "max-connections-per-address": 5000,
    "max-connections-per-doc": 1000,
}


def canonical_name(name: str) -> str:
    """The server's name as the report and the JSON use it; raises for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}: choose among {', '.join(SERVERS)} (baseline = pycrdt)")
    return name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def command(name: str, port: int, data_dir: Path, history: str = "on") -> list[str]:
    """The command line of server `name`; `data_dir` holds whatever it stores (it need not exist yet)."""
    name = canonical_name(name)
    if name == "redraft" or name in REDRAFT_ASGI:
        limits = [arg for flag, value in REDRAFT_BENCH_LIMITS.items() for arg in (f"--{flag}", str(value))]
        flags = ["--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning", "--history", history,
                 *limits]  # fmt: skip
        if name == "redraft":
            return [sys.executable, "-m", "redraft", "serve", *flags]
        return [sys.executable, str(REPO / "bench" / "redraft_asgi.py"), name.removeprefix("redraft-asgi-"), *flags]
    if name == "pycrdt":
        return [sys.executable, str(REPO / "bench" / "baseline_server.py"), "--port", str(port)]
    script = NODE_DIR / NODE_PROJECTS[name] / "server.mjs"
    sqlite = ["--sqlite", str(data_dir / "hocuspocus.sqlite")] if name == "hocuspocus-sqlite" else []
    return [_tool("node"), str(script), "--port", str(port), *sqlite]


def dialect(name: str):
    """How clients address and frame messages for server `name`."""
    name = canonical_name(name)
    if name.startswith("hocuspocus"):
        return Hocuspocus()
    if name == "yws":  # the document is the whole path, as in its own server: ws://host:port/<doc>
        return YWebsocket(path_prefix="/", echoes=True)
    # Redraft sends an update back to its sender only inside a merge with other clients' updates.
    return YWebsocket(path_prefix="/ws/", echoes=name == "pycrdt")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the Node servers need `{name}` on PATH (Node >= 20)")
    return path


def ensure_node_servers() -> None:
    """Installs each Node server's locked dependencies (`npm ci`) where node_modules is missing or older
    than package-lock.json; raises naming the command when npm fails."""
    for project in sorted(set(NODE_PROJECTS.values())):
        folder = NODE_DIR / project
        installed = folder / "node_modules" / ".package-lock.json"  # npm writes it last
        if installed.exists() and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime:
            continue
        args = [_tool("npm"), "ci", "--no-audit", "--no-fund"]
        done = subprocess.run(args, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise RuntimeError(f"`npm ci` in {folder} failed (exit {done.returncode}):\n{tail}")


def node_versions() -> dict:
    """Node's version and the installed versions of the Node servers' packages (None where not installed)."""
    found: dict[str, str | None] = {}
    node = shutil.which("node")
    found["node"] = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else None
    for project, packages in NODE_PACKAGES.items():
        for package in packages:
            manifest = NODE_DIR / project / "node_modules" / package / "package.json"
            key = package if package != "yjs" else f"yjs ({project})"
            found[key] = json.loads(manifest.read_text())["version"] if manifest.exists() else None
    return found


class ServerProcess:
    def __init__(self, name: str, port: int, process: subprocess.Popen, log_path: Path, dialect=None):
        self.name = name  # the label in the report: a server's name, or "redraft-off" (history off)
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
    name = canonical_name(name)
    label = label or name
    if name in NODE_PROJECTS:
        ensure_node_servers()
    with tempfile.TemporaryDirectory(prefix=f"collab-{label}-") as tmp:
        port = free_port()
        log_path = Path(tmp) / "server.log"
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command(name, port, data_dir, history), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        server = ServerProcess(label, port, process, log_path, dialect(name))
        try:
            await server.wait_ready()
            yield server
        finally:
            server.stop()
            # Python's loggers write ERROR; Node prints an exception's "Error:" (or "...Error:").
            log = log_path.read_text(errors="replace").splitlines()
            errors = [line for line in log if "ERROR" in line or "Error:" in line]
            if errors:
                print(f"{label} logged {len(errors)} errors, the first: {errors[0]}", file=sys.stderr)
