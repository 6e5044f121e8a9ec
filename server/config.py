"""The server's configuration: one frozen dataclass, validated once at the entry point."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_MODES = ("local", "redis", "openai", "off")
DOC_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
DOC_NAME_RULE = "document names are 1-128 characters of A-Z a-z 0-9 . _ -, and not . or .."


def is_valid_doc_name(name: str) -> bool:
    # "." and ".." would name the directory, or its parent, wherever a name becomes a path or a URL segment
    # (/d/.. is normalised away by browsers and proxies before it reaches us).
    return DOC_NAME.fullmatch(name) is not None and name not in (".", "..")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opt(default, help: str, **kwargs):
    """A configuration field; its help text also feeds the CLI and the README reference."""
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class ServerConfig:
    host: str = _opt("127.0.0.1", "address to bind")
    port: int = _opt(8000, "port to bind")
    data_dir: Path = _opt(Path("./data"), "where the embedded SQLite store lives")
    redis_url: str | None = _opt(None, "redis://... keeps documents in Redis, so several servers can share them")
    redis_prefix: str = _opt("redraft", "prefix of every Redis key")
    engine: str = _opt("off", "where redrafts run", choices=ENGINE_MODES)
    secret: str | None = _opt(None, "signing secret for share tokens; without one only loopback is served")
    allowed_origins: tuple[str, ...] = _opt((), "browser origins allowed besides the server's own (comma-separated)")
    web_dir: Path = _opt(Path(__file__).resolve().parent.parent / "web" / "dist", "the built editor")

    max_message_bytes: int = _opt(1 << 20, "largest websocket message a client may send")
    max_doc_bytes: int = _opt(16 << 20, "largest stored size of a document")
    max_connections_per_doc: int = _opt(200, "connections one document may have")
    max_connections_per_address: int = _opt(100, "connections one client address may have")
    max_messages_per_s: float = _opt(200.0, "sustained messages per second per connection")
    max_message_burst: int = _opt(1000, "burst of messages per connection above the sustained rate")
    max_send_queue: int = _opt(2000, "frames queued for a slow client before it is disconnected (it resyncs)")
    max_send_queue_bytes: int = _opt(
        4 << 20, "bytes queued for a slow client before it is disconnected (4508; it resyncs): 200 slow clients "
        "hold at most 800 MiB, plus the one frame each that took it past (a large document's first sync)"
    )
    max_pending_bytes: int = _opt(
        1 << 20, "bytes of updates a document keeps while they wait for changes they depend on (a client's "
        "keystroke that overtook its own offline edits); beyond it such updates are refused (4509; it resyncs)"
    )
    max_unstored_bytes: int = _opt(
        4 << 20, "bytes of a document's edits received but not yet stored; past it the server stops reading that "
        "document's clients until the store has caught up (TCP holds the rest: nothing is refused or lost)"
    )
    max_awareness_bytes: int = _opt(
        4096, "largest awareness state (name, colours, cursor: some 300 bytes) a client may announce; larger ones "
        "are dropped and counted, so a document holds at most this per connection"
    )
    room_grace_s: float = _opt(30.0, "seconds a document stays loaded after its last client left")
    compact_min_bytes: int = _opt(
        256 << 10, "log bytes that trigger compaction (or the snapshot's size, when larger)"
    )

    # engine.model.config.DEFAULT_MODEL: the server imports the engine only through engine.api, lazily
    model: str = _opt(
        "redraft-small", "model for --engine local: redraft-small (shipped), a preset (tiny, ...) or a checkpoint dir"
    )
    engine_device: str | None = _opt(None, "cpu or cuda for --engine local (default: cuda when available)")
    engine_max_batch: int = _opt(4, "canvases denoised together in one step (--engine local)")
    engine_quantize: str = _opt(  # engine.model.config.QUANTIZE_FORMATS: the server imports no engine module eagerly
        "none", "weight format for --engine local (fp8: half the weights' memory; nf4: under a third)",
        choices=("none", "fp8", "nf4"), aliases=("quantize",),  # ARCHITECTURE.md's `serve --quantize`
    )
    engine_kernels: str = _opt(  # engine.model.config.KERNEL_MODES
        "off", "the fused Triton kernels for --engine local (CUDA)", choices=("off", "on")
    )
    # --engine openai: an OpenAI-compatible server (vLLM, llama.cpp, Ollama, a gateway). Its API key comes from
    # REDRAFT_ENGINE_API_KEY or --engine-api-key-file, never from a flag's value, which `ps` shows to everyone.
    engine_url: str | None = _opt(
        None, "for --engine openai: the server's OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1"
    )
    engine_model: str | None = _opt(None, "for --engine openai: the model to ask for (default: the only one it lists)")
    engine_context: int = _opt(
        0, "for --engine openai: the model's context in tokens (0: what /v1/models says, else 4096)"
    )
    engine_timeout: float = _opt(60.0, "for --engine openai: seconds to connect, and between two streamed chunks")
    # engine.remote.config.DEFAULT_DEADLINE_S: a server trickling under engine_timeout must not hold a redraft for ever
    engine_deadline: float = _opt(600.0, "for --engine openai: seconds one answer may take, its whole stream")
    engine_max_concurrency: int = _opt(
        4, "for --engine openai: requests in flight to the server at once; the rest wait in order"
    )
    engine_api_key_file: str | None = _opt(
        None, "for --engine openai: a file whose first line is the API key (or set REDRAFT_ENGINE_API_KEY)"
    )
    # Version history (server/history)
    history: str = _opt(
        "on", "record every change with its author and origin, so versions can be listed, read and restored",
        choices=("on", "off"),
    )
    history_keep_all_days: float = _opt(
        7.0, "days every recorded change is kept; older ones fold into one version per hour (0: keep everything)"
    )
    history_hourly_days: float = _opt(
        30.0, "days hourly versions are kept; older ones fold into one version per day (0: hourly for good)"
    )
    redraft_queue_max: int = _opt(32, "redrafts waiting or running at once on this server; more get 429")
    redraft_max_chars: int = _opt(8000, "longest range a redraft may rewrite (UTF-16 units)")
    redraft_context_chars: int = _opt(
        8000, "document text sent as context on each side of the range (the engine trims it to the model's context)"
    )
    redraft_user_per_min: float = _opt(20.0, "redrafts one user (token or address) may ask for per minute")
    redraft_user_burst: int = _opt(5, "burst of redrafts per user above that rate")
    redraft_doc_per_min: float = _opt(60.0, "redrafts per document per minute")
    redraft_doc_burst: int = _opt(10, "burst of redrafts per document above that rate")
    redraft_preview_hz: float = _opt(15.0, "live preview states published per second per document")
    redraft_suggestion_ttl_s: float = _opt(
        900.0, "seconds a suggestion waits for accept or reject before it expires"
    )

    # The OpenAI-compatible API over this server's engine (server/openai_api.py)
    openai_api: str = _opt(
        "on", "serve /v1/models, /v1/chat/completions and /v1/completions over the engine (with --secret they "
        "take an engine token: redraft token --engine)", choices=("on", "off")
    )
    openai_model_name: str | None = _opt(
        None, "model id the /v1 API lists and accepts (default: the engine's model, e.g. redraft-small)"
    )
    openai_max_body_bytes: int = _opt(1 << 20, "largest /v1 request body (messages and all)")

    instance_id: str = field(default="", compare=False, metadata={"cli": False})

    history_pause_s: float = _opt(
        60.0, "a pause in one person's typing longer than this (seconds) starts a new version in the history"
    )

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_MODES:
            raise ValueError(f"engine must be one of {', '.join(ENGINE_MODES)}, not {self.engine!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("secret must be at least 16 characters")
        if self.secret is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address: without a secret anyone who "
                "reaches the server could edit every document; set --secret or bind 127.0.0.1"
            )
        for name in (
            "max_message_bytes",
            "max_doc_bytes",
            "max_connections_per_doc",
            "max_connections_per_address",
            "max_message_burst",
            "max_send_queue",
            "max_send_queue_bytes",
            "max_pending_bytes",
            "max_unstored_bytes",
            "compact_min_bytes",
            "engine_max_batch",
            "engine_max_concurrency",
            "redraft_queue_max",
            "redraft_max_chars",
            "redraft_user_burst",
            "redraft_doc_burst",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_awareness_bytes < 256:
            raise ValueError(
                f"max_awareness_bytes must be at least 256 (a name, colours, a cursor), not {self.max_awareness_bytes}"
            )
        if self.max_messages_per_s <= 0:
            raise ValueError("max_messages_per_s must be positive")
        if self.engine == "redis" and not self.redis_url:
            raise ValueError("--engine redis sends jobs to workers through Redis: set --redis-url too")
        if self.engine == "openai" and not self.engine_url:
            raise ValueError("--engine openai sends redrafts to an OpenAI-compatible server: set --engine-url too")
        if self.engine_url is not None and not self.engine_url.startswith(("http://", "https://")):
            raise ValueError(
                f"engine_url must be an http:// or https:// URL (e.g. http://host:8000/v1), not "
                f"{re.sub(r'[^/@]*@', '…@', self.engine_url, count=1)!r}"  # a user:password in it not shown
            )
        if self.engine_context != 0 and self.engine_context < 64:
            raise ValueError(
                f"engine_context must be 0 (ask the server) or at least 64 tokens, not {self.engine_context}"
            )
        if self.engine_timeout <= 0:
            raise ValueError(f"engine_timeout must be positive, not {self.engine_timeout}")
        if self.engine_deadline <= 0:
            raise ValueError(f"engine_deadline must be positive, not {self.engine_deadline}")
        if self.engine_api_key_file is not None and not Path(self.engine_api_key_file).is_file():
            raise ValueError(f"engine_api_key_file: {self.engine_api_key_file!r} is not a file")
        if self.engine_device not in (None, "cpu", "cuda"):
            raise ValueError(f"engine_device must be cpu or cuda, not {self.engine_device!r}")
        for name in ("redraft_user_per_min", "redraft_doc_per_min", "redraft_preview_hz", "redraft_suggestion_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.redraft_context_chars < 0:
            raise ValueError("redraft_context_chars must not be negative")
        if self.room_grace_s < 0:
            raise ValueError("room_grace_s must not be negative")
        if self.redis_prefix and not DOC_NAME.fullmatch(self.redis_prefix):
            raise ValueError("redis_prefix may only hold [A-Za-z0-9._-]")
        if self.history not in ("on", "off"):
            raise ValueError(f"history must be on or off, not {self.history!r}")
        for name in ("history_keep_all_days", "history_hourly_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (keep everything) or a positive number of days")
        if 0 < self.history_hourly_days < self.history_keep_all_days:
            raise ValueError(
                f"history_hourly_days ({self.history_hourly_days}) counts from now, so it must be at least "
                f"history_keep_all_days ({self.history_keep_all_days}), or 0"
            )
        if self.openai_api not in ("on", "off"):
            raise ValueError(f"openai_api must be on or off, not {self.openai_api!r}")
        if self.openai_model_name is not None and not self.openai_model_name.strip():
            raise ValueError("openai_model_name must not be blank")
        if self.openai_max_body_bytes < 1024:
            raise ValueError(f"openai_max_body_bytes must be at least 1024, not {self.openai_max_body_bytes}")
        if not 0 < self.history_pause_s <= 86400:
            raise ValueError(f"history_pause_s must be more than 0 and at most 86400 (a day), not {self.history_pause_s}")
