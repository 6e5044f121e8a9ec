"""The server's configuration: one frozen dataclass, validated once at the entry point."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_MODES = ("local", "redis", "off")
DOC_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def is_valid_doc_name(name: str) -> bool:
    return DOC_NAME.fullmatch(name) is not None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    redis_url: str | None = None
    redis_prefix: str = "redraft"
    engine: str = "off"
    secret: str | None = None
    # Browser origins allowed besides the server's own (scheme://host:port).
    allowed_origins: tuple[str, ...] = ()
    web_dir: Path = Path(__file__).resolve().parent.parent / "web" / "dist"

    max_message_bytes: int = 1 << 20
    max_doc_bytes: int = 16 << 20
    max_connections_per_doc: int = 200
    max_connections_per_address: int = 100
    # Token bucket per connection, over every message a client sends.
    max_messages_per_s: float = 200.0
    max_message_burst: int = 1000
    # Frames waiting for a slow client before it is disconnected (it resyncs on return).
    max_send_queue: int = 2000
    room_grace_s: float = 30.0
    compact_after_updates: int = 500

    instance_id: str = field(default="", compare=False)

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
            "compact_after_updates",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_messages_per_s <= 0:
            raise ValueError("max_messages_per_s must be positive")
        if self.room_grace_s < 0:
            raise ValueError("room_grace_s must not be negative")
        if self.redis_prefix and not DOC_NAME.fullmatch(self.redis_prefix):
            raise ValueError("redis_prefix may only hold [A-Za-z0-9._-]")
