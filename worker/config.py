"""The `redraft worker` configuration: one frozen dataclass and its flags (the Redis key names are jobs/protocol.py's).

Cheap to import (no torch, no redis, no httpx): the server's command line adds these flags to its own parser.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from dataclasses import dataclass, field

from engine.model.config import DEFAULT_MODEL, QUANTIZE_FORMATS, check_engine_options
from engine.remote.config import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    RemoteConfig,
    read_api_key,
)
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


def env_value(flag: str, default: str | None = None) -> str | None:
    """A flag's default from REDRAFT_<FLAG>, else `default`."""
    return os.environ.get(env_name(flag), default)


_DEFAULTS = WorkerConfig.__dataclass_fields__
# (flag, what it sets, default shown or None): the parser below and the README's reference
# (`redraft config-reference`) are both made from this table.
FLAGS: tuple[tuple[str, str, str | None], ...] = (
    ("redis-url", "redis://... where the jobs queue lives (required)", None),
    ("model", "redraft-small, a preset (tiny, diffusiongemma-26b-a4b) or a checkpoint dir", DEFAULT_MODEL),
    ("device", "cpu or cuda (default: cuda when available)", None),
    ("dtype", "float32 or bfloat16 (default: bfloat16 on cuda)", None),
    ("quantize", f"weight format: {', '.join(QUANTIZE_FORMATS)} (fp8 halves the weights' memory; nf4: under a third)",
     "none"),
    ("kernels", "on: the fused Triton kernels in the hot paths (CUDA)", "off"),
    ("max-batch", "jobs run at once, batched in one decoder pass", str(_DEFAULTS["max_batch"].default)),
    ("redis-prefix", "prefix of every Redis key (the servers' --redis-prefix)", "redraft"),
    ("name", "this worker's consumer name (default: host-pid)", None),
    ("claim-timeout", "seconds a job may sit idle before a dead worker's job is taken over",
     str(_DEFAULTS["claim_timeout_s"].default)),
    ("max-deliveries", "deliveries after which a job that keeps killing workers fails",
     str(_DEFAULTS["max_deliveries"].default)),
    ("drain-timeout", "seconds jobs in flight may finish after SIGTERM before they are handed back",
     str(_DEFAULTS["drain_s"].default)),
    ("engine", "local: the model on this machine; openai: an OpenAI-compatible server, so that several servers "
     "share it through the queue", "local"),
    ("engine-url", "for --engine openai: the server's OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1", None),
    ("engine-model", "for --engine openai: the model to ask for (default: the only one it lists)", None),
    ("engine-context", "for --engine openai: the model's context in tokens (default: what /v1/models says, else 4096)",
     None),
    ("engine-timeout", "for --engine openai: seconds to connect, and between two streamed chunks",
     str(DEFAULT_TIMEOUT_S)),
    ("engine-deadline", "for --engine openai: seconds one answer may take, its whole stream", str(DEFAULT_DEADLINE_S)),
    ("engine-max-concurrency", "for --engine openai: jobs this worker takes at once, each one request upstream "
     "(instead of --max-batch)", str(DEFAULT_MAX_CONCURRENCY)),
    ("engine-api-key-file", "for --engine openai: a file whose first line is the API key (or set "
     "REDRAFT_ENGINE_API_KEY)", None),
)


def env_name(flag: str) -> str:
    return "REDRAFT_" + flag.upper().replace("-", "_")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The `worker` flags; each also reads REDRAFT_<FLAG> from the environment."""
    for flag, help_text, default in FLAGS:
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(f"--{flag}", default=env_value(flag, default), help=f"{help_text}{shown} [env {env_name(flag)}]")
    parser.add_argument("--log-level", default=env_value("log-level", "info"), choices=("debug", "info", "warning", "error"),
                        help="[env REDRAFT_LOG_LEVEL]")


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    """Raises ValueError naming the flag when a value cannot be read."""
    values = {"redis_url": args.redis_url or "", "model": args.model, "device": args.device or None,
              "dtype": args.dtype or None, "quantize": args.quantize, "kernels": args.kernels,
              "prefix": args.redis_prefix}
    if args.name:
        values["name"] = args.name
    for flag, name, parse in (("max-batch", "max_batch", int), ("claim-timeout", "claim_timeout_s", float),
                              ("max-deliveries", "max_deliveries", int), ("drain-timeout", "drain_s", float)):
        values[name] = _parse(args, flag, parse)
    values["engine"] = args.engine
    if args.engine == "openai" and args.engine_url:
        values["remote"] = RemoteConfig(
            args.engine_url, model=args.engine_model or None,
            context=_parse(args, "engine-context", int) if args.engine_context else None,
            timeout_s=_parse(args, "engine-timeout", float),
            deadline_s=_parse(args, "engine-deadline", float),
            max_concurrency=_parse(args, "engine-max-concurrency", int),
            api_key=read_api_key(args.engine_api_key_file),
        )
        # One job is one request upstream: the server's own batching decides the rest, and a job this worker
        # took but cannot send yet would wait here rather than go to a worker with a free slot.
        values["max_batch"] = values["remote"].max_concurrency
    return WorkerConfig(**values)


def _parse(args: argparse.Namespace, flag: str, parse):
    raw = getattr(args, flag.replace("-", "_"))
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"--{flag}: cannot read {raw!r}") from None
