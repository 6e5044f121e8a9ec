"""`redraft worker` and `redraft worker-health`: their flags, read into a WorkerConfig, and the commands.

Cheap to import (no torch, no redis, no httpx): `redraft` adds these flags to its parser, and the worker itself
(worker/run.py) loads only when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from engine.model.config import DEFAULT_MODEL, QUANTIZE_FORMATS
from engine.remote.config import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    PASSWORD_ON_COMMAND_LINE,
    RemoteConfig,
    password_on_command_line,
    read_api_key,
)
from redraft.flags import env_name, env_value
from redraft.logs import start_logging
from worker.config import WorkerConfig

log = logging.getLogger("redraft.worker")


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


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The `worker` flags; each also reads REDRAFT_<FLAG> from the environment."""
    for flag, help_text, default in FLAGS:
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(f"--{flag}", default=env_value(flag, default), help=f"{help_text}{shown} [env {env_name(flag)}]")
    parser.add_argument("--log-level", default=env_value("log-level", "info"), choices=("debug", "info", "warning", "error"),
                        help=f"[env {env_name('log-level')}]")


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


def run_worker(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"redraft worker: {exc}", file=sys.stderr)
        return 2
    start_logging(args.log_level)
    if config.remote is not None and password_on_command_line(args.engine_url):
        log.warning(PASSWORD_ON_COMMAND_LINE)
    from worker.run import run_worker as serve_jobs  # redis, and torch for --engine local

    return serve_jobs(config)


def add_worker_health_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, help_text, default in (
        ("redis-url", "redis://... the workers' Redis (required)", None),
        ("redis-prefix", "prefix of every Redis key (the workers' --redis-prefix)", "redraft"),
        ("name", "the worker's --name (default: any worker named after this host, as workers name themselves)",
         None),
    ):
        parser.add_argument(f"--{flag}", default=env_value(flag, default), help=f"{help_text} [env {env_name(flag)}]")


def run_worker_health(args: argparse.Namespace) -> int:
    if not args.redis_url:
        print("redraft worker-health: --redis-url (or REDRAFT_REDIS_URL) is required", file=sys.stderr)
        return 2
    from worker.health import worker_status  # redis

    is_ready, line = worker_status(args.redis_url, args.redis_prefix, args.name)
    print(line)
    return 0 if is_ready else 1
