"""A real Yjs client (yjs + y-websocket in Node) that a test drives command by command."""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

PEER_SCRIPT = Path(__file__).resolve().parents[1] / "interop" / "peer.cjs"


class NodePeerError(RuntimeError):
    pass


class NodePeer:
    def __init__(self, ws_url: str, doc: str, params: dict | None = None, name: str | None = None):
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        self.proc = subprocess.Popen(
            [node, str(PEER_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._ids = itertools.count()
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.call("connect", url=ws_url, doc=doc, params=params or {}, clientName=name)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))
        self._replies.put(None)

    def call(self, cmd: str, timeout: float = 15.0, **args) -> dict:
        msg_id = next(self._ids)
        self.proc.stdin.write(json.dumps({"id": msg_id, "cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise NodePeerError(f"node peer did not answer {cmd} within {timeout}s") from None
        if reply is None:
            raise NodePeerError(f"node peer exited: {self.proc.stderr.read()[-2000:]}")
        if not reply.pop("ok"):
            raise NodePeerError(f"{cmd} failed: {reply}")
        return reply

    def wait_synced(self, timeout: float = 10) -> None:
        self.call("wait_synced", timeout=timeout + 2, seconds=timeout)

    def insert(self, index: int, text: str) -> str:
        return self.call("insert", index=index, text=text)["text"]

    def delete(self, index: int, length: int) -> str:
        return self.call("delete", index=index, length=length)["text"]

    @property
    def text(self) -> str:
        return self.call("text")["text"]

    def wait_text(self, expected: str, timeout: float = 10) -> None:
        try:
            self.call("wait_text", timeout=timeout + 2, text=expected, seconds=timeout)
        except NodePeerError as exc:
            raise AssertionError(f"text never became {expected!r}: {exc}") from None

    def disconnect(self) -> None:
        self.call("disconnect")

    def reconnect(self) -> None:
        self.call("reconnect")

    def relpos(self, index: int, assoc: int = 0) -> str:
        return self.call("relpos", index=index, assoc=assoc)["relpos"]

    def resolve(self, relpos: str) -> int | None:
        return self.call("resolve", relpos=relpos)["index"]

    def ai_log(self) -> list[dict]:
        """Every redraft entry of the AI peer's awareness this client has seen, in order."""
        return self.call("ai_log")["log"]

    def events(self) -> list[dict]:
        return self.call("events")["events"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=5)
            except (NodePeerError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()
