"""A scripted engine worker for the editor tests: plays `redraft worker` over Redis, step by step.

The server runs with `--engine redis` exactly as in compose mode; this stands in for the GPU worker
behind the same wire protocol (jobs/protocol.py's docstring), so the redraft's whole server path
(fork, AI peer awareness, merge, undo) is real while the test decides what each canvas says and
when the redraft ends: long enough, for instance, for someone to type a sentence meanwhile.
"""

from __future__ import annotations

import json
import threading
import time

import redis

from jobs import protocol


class ScriptedJob:
    def __init__(self, engine: "ScriptedEngine", entry_id: str, fields: dict):
        self.engine = engine
        self.entry_id = entry_id
        self.id = fields[b"id"].decode()
        self.spec = json.loads(fields[b"spec"])
        self.reply_key = fields[b"reply"].decode()

    def _event(self, event: str, data: dict) -> None:
        self.engine.client.xadd(self.reply_key, protocol.reply_entry(event, 1, data))

    def progress(self, step: int, max_steps: int, tokens: list, canvas_index: int = 0, text: str | None = None,
                 num_canvases: int = 1) -> None:
        """One denoising step's snapshot as engine/runtime/redrafts.py makes it: `tokens` is [[piece, confidence], ...]
        (earlier canvases' text as one piece first), `progress` counts steps over all canvases."""
        written = text if text is not None else "".join(piece for piece, _ in tokens)
        self._event(protocol.EVENT_PROGRESS, {
            "step": step, "max_steps": max_steps, "canvas_index": canvas_index, "num_canvases": num_canvases,
            "progress": {"step": canvas_index * max_steps + step, "max_steps": num_canvases * max_steps},
            "text": written, "tokens": tokens, "stopped": False, "finished": False,
        })

    def finish(self, text: str, steps: int = 12) -> None:
        """The outcome, and the job leaves the group's pending list, as a worker does."""
        self._event(protocol.EVENT_OUTCOME, {"status": "done", "text": text, "steps": [steps], "tokens": len(text.split()),
                                "timings": {}})
        self.engine.client.xack(self.engine.jobs_key, protocol.GROUP, self.entry_id)

    def fail(self, detail: str) -> None:
        self._event(protocol.EVENT_FAILED, {"detail": detail})
        self.engine.client.xack(self.engine.jobs_key, protocol.GROUP, self.entry_id)


class ScriptedEngine:
    def __init__(self, redis_url: str, prefix: str = "redraft", name: str = "scripted", tasks: dict | None = None):
        """`tasks`: the declaration it publishes as a loaded worker does (jobs/tasks.py's ModelTasks.to_dict());
        None publishes none, as a worker older than declarations, which servers take to do every task."""
        self.client = redis.Redis.from_url(redis_url)
        self.name = name
        self.tasks = tasks
        self.prefix = prefix
        self.jobs_key = protocol.jobs_key(prefix)
        self.workers_key = protocol.workers_key(prefix)
        self.liveness_key = protocol.liveness_key(prefix, name)
        try:
            self.client.xgroup_create(self.jobs_key, protocol.GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._stop = threading.Event()
        self._beat()
        self._heart = threading.Thread(target=self._heartbeat, daemon=True)
        self._heart.start()

    def _beat(self) -> None:
        status = {"name": self.name, "ready": True, "stopping": False, "model": "scripted", "device": "cpu",
                  "running": 0, "max_batch": 8, "started_at": time.time()}
        if self.tasks is not None:
            status.update(model_name="scripted", tasks=self.tasks)
        self.client.set(self.liveness_key, json.dumps(status), px=5000)
        self.client.sadd(self.workers_key, self.name)

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._beat()
            except redis.RedisError:
                pass  # the test's Redis is going away

    def next_job(self, timeout: float = 10.0) -> ScriptedJob:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.client.xreadgroup(protocol.GROUP, self.name, {self.jobs_key: ">"}, count=1, block=200)
            for _key, entries in reply or []:
                for entry_id, fields in entries:
                    return ScriptedJob(self, entry_id.decode(), fields)
        raise AssertionError(f"no redraft job reached the scripted engine within {timeout} s")

    def is_cancelled(self, job: ScriptedJob) -> bool:
        return bool(self.client.exists(protocol.cancel_key(self.prefix, job.id)))

    def close(self) -> None:
        self._stop.set()
        self._heart.join(2)
        try:
            self.client.delete(self.liveness_key)
            self.client.srem(self.workers_key, self.name)
        except redis.RedisError:
            pass
        self.client.close()
