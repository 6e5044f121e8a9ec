"""Real processes for tests: redis-server and `redraft serve`, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    def __init__(self, workdir: Path, persistent: bool = False):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        # Persistent servers fsync every write to their append-only file, as production would.
        self.persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
        workdir.mkdir(parents=True, exist_ok=True)
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *self.persistence, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, 10, "redis-server to answer")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @classmethod
    def restart(cls, old: "RedisServer") -> "RedisServer":
        """A new redis-server on the same port and data (empty unless `persistent`)."""
        new = cls.__new__(cls)
        new.port, new.url, new.workdir, new.persistence = old.port, old.url, old.workdir, old.persistence
        new._spawn()
        return new


class ServerProcess:
    """`python -m redraft serve` in a subprocess; restartable on the same port and data."""

    def __init__(self, data_dir: Path, redis_url: str | None = None, extra_args: tuple[str, ...] = (),
                 env: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.extra_args = extra_args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "redraft", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--log-level", "warning", *self.extra_args]
        if self.redis_url:
            args += ["--redis-url", self.redis_url]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._healthy, 20, f"server on port {self.port} to be healthy ({self.log_path})")
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(self.http_url + "/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def restart(self) -> "ServerProcess":
        self.kill()
        return self.start()


class RedraftWorker:
    """`python -m redraft worker` in a subprocess: the default (shipped) model on CPU unless told otherwise.

    Ready once its liveness key (`{prefix}:engine:worker:{name}`) says so, which the worker writes only
    after loading the model and running its warm-up redraft.
    """

    def __init__(self, redis_url: str, workdir: Path, name: str = "worker", prefix: str = "redraft",
                 extra_args: tuple[str, ...] = (), env: dict | None = None, model: str = "redraft-small"):
        self.redis_url = redis_url
        self.name = name
        self.prefix = prefix
        self.args = [sys.executable, "-m", "redraft", "worker", "--redis-url", redis_url, "--redis-prefix", prefix,
                     "--name", name, "--model", model, "--log-level", "info", *extra_args]
        if "--device" not in extra_args:  # both small models: the CPU even where there is a GPU
            self.args += ["--device", "cpu"]
        # One intra-op thread: a small model gains nothing from more, and on a shared 2-core machine OpenMP's
        # spin-waiting slows everything else down (see tests/support/torch_session.py).
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        self.workdir = workdir
        self.log_path = workdir / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def liveness_key(self) -> str:
        return f"{self.prefix}:engine:worker:{self.name}"

    def start(self, wait: bool = True, timeout: float = 60) -> "RedraftWorker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def status(self) -> dict | None:
        """The worker's liveness value (JSON status), or None when the key is absent."""
        import json

        import redis

        with redis.Redis.from_url(self.redis_url) as client:
            value = client.get(self.liveness_key)
        return json.loads(value) if value is not None else None

    def wait_ready(self, timeout: float = 60) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            status = self.status()
            return status if status and status["ready"] else None

        return wait_until(ready, timeout, f"worker {self.name} to be ready ({self.log_path})", interval=0.05)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> int | None:
        """Sends `sig` and waits for the exit; returns the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM)
