"""The `redraft worker` configuration: one frozen dataclass (its flags are redraft/worker.py's, the Redis key names
jobs/protocol.py's). Cheap to import: no torch, no redis, no httpx."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from engine.model.config import DEFAULT_MODEL, check_engine_options
from engine.remote.config import RemoteConfig
from jobs import protocol

WORKER_ENGINES = ("local", "openai")
KEY_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")  # the prefix and the name become parts of Redis keys


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str
    model: str = DEFAULT_MODEL  # a preset, a shipped model or a checkpoint directory
    device: str | None = None
    dtype: str | None = None
    quantize: str = "none"  # weight format: engine.model.config.QUANTIZE_FORMATS
    kernels: str = "off"  # engine.model.config.KERNEL_MODES
    max_batch: int = 4  # jobs run at once; they share decoder passes in the scheduler
    prefix: str = "redraft"
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    claim_timeout_s: float = 10.0  # a pending job idle this long belonged to a dead worker
    max_deliveries: int = 3  # a job delivered more often than this fails: it probably kills workers
    drain_s: float = 5.0  # on SIGTERM, how long jobs in flight may finish before they are handed back
    heartbeat_s: float = 1.0
    liveness_ttl_s: float = 5.0
    reply_ttl_s: float = 600.0  # abandoned reply streams vanish; older queued jobs are dropped
    reply_maxlen: int = 256  # progress is a whole state each time: a reader that lags loses nothing
    cancel_poll_s: float = 0.1
    engine: str = "local"  # WORKER_ENGINES: the model here, or an OpenAI-compatible server (`remote`)
    remote: RemoteConfig | None = None

    def __post_init__(self) -> None:
        if not self.redis_url:
            raise ValueError("redis_url is required (--redis-url or REDRAFT_REDIS_URL): jobs come through Redis")
        if self.engine not in WORKER_ENGINES:
            raise ValueError(f"engine must be one of {', '.join(WORKER_ENGINES)}, not {self.engine!r}")
        if self.engine == "openai" and self.remote is None:
            raise ValueError("--engine openai takes redrafts to an OpenAI-compatible server: set --engine-url too")
        check_engine_options(self.device, self.dtype, self.quantize, self.kernels)
        for name in ("max_batch", "max_deliveries", "reply_maxlen"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("prefix", "name"):
            if not KEY_PART.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be 1-128 characters of A-Z a-z 0-9 . _ -, not {getattr(self, name)!r}")
        if self.drain_s < 0:
            raise ValueError("drain_s must not be negative")
        if not 0 < self.heartbeat_s < self.liveness_ttl_s:
            raise ValueError("heartbeat_s must be positive and shorter than liveness_ttl_s")
        if self.claim_timeout_s <= 2 * self.heartbeat_s:
            raise ValueError("claim_timeout_s must exceed two heartbeats, or live workers' jobs get taken over")

    @property
    def jobs_key(self) -> str:
        return protocol.jobs_key(self.prefix)

    @property
    def liveness_key(self) -> str:
        return protocol.liveness_key(self.prefix, self.name)

    @property
    def workers_key(self) -> str:
        return protocol.workers_key(self.prefix)

    def cancel_key(self, job_id: str) -> str:
        return protocol.cancel_key(self.prefix, job_id)

    def reply_key(self, job_id: str) -> str:
        return protocol.reply_key(self.prefix, job_id)
