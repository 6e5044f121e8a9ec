"""The `--engine openai` settings: one frozen dataclass, and where its API key comes from.

Cheap to import (no httpx, no torch): the worker's command line builds it. The key is read from the
environment or a file, never from a flag, so that it does not show in `ps` or in a shell's history.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

API_KEY_ENV = "REDRAFT_ENGINE_API_KEY"
DEFAULT_TIMEOUT_S = 60.0  # a big model's prefill of a long prompt comes before its first chunk
DEFAULT_MAX_CONCURRENCY = 4
# The whole of one answer, from its request to its last chunk. --engine-timeout bounds the silence between two
# chunks only: a server trickling a byte every 59 s would otherwise hold a redraft open for ever. 4096 tokens
# at llama.cpp's 10 tokens a second on a CPU take 410 s.
DEFAULT_DEADLINE_S = 600.0


@dataclass(frozen=True)
class RemoteConfig:
    url: str  # base URL of the OpenAI-compatible API, e.g. http://gpu-box:8000/v1 (as the openai client takes)
    model: str | None = None  # default: the only model the server lists
    context: int | None = None  # prompt + output tokens; default: what /v1/models says, else FALLBACK_CONTEXT
    timeout_s: float = DEFAULT_TIMEOUT_S  # to connect, and between two chunks of a stream
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY  # requests in flight upstream; the rest wait in order
    api_key: str | None = field(default=None, repr=False)  # never logged
    deadline_s: float = DEFAULT_DEADLINE_S  # the whole of one answer, from its request to its last chunk

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(
                "engine_url must be an http:// or https:// URL (e.g. http://host:8000/v1), not "
                f"{hide_userinfo(self.url)!r}"
            )
        if self.context is not None and self.context < 64:
            raise ValueError(f"engine_context must be at least 64 tokens, not {self.context}")
        if self.timeout_s <= 0:
            raise ValueError(f"engine_timeout must be positive, not {self.timeout_s}")
        if self.deadline_s <= 0:
            raise ValueError(f"engine_deadline must be positive, not {self.deadline_s}")
        if self.max_concurrency < 1:
            raise ValueError(f"engine_max_concurrency must be at least 1, not {self.max_concurrency}")
        if self.api_key is not None and not all("!" <= char <= "~" for char in self.api_key):
            # Said without the key: httpx's "Illegal header value b'Bearer sk-...'" would show it on /healthz.
            raise ValueError(f"the engine API key ({API_KEY_ENV} or engine_api_key_file) must be printable ASCII "
                             "without spaces or line breaks inside it")
        if self.model is not None and not self.model.strip():
            raise ValueError("engine_model must not be empty (leave it out to use the server's only model)")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    def __repr__(self) -> str:  # the URL without its password; the key not at all
        return (f"RemoteConfig(url={self.shown_url!r}, model={self.model!r}, context={self.context!r}, "
                f"timeout_s={self.timeout_s!r}, max_concurrency={self.max_concurrency!r}, "
                f"deadline_s={self.deadline_s!r})")

    @property
    def request_url(self) -> str:
        """base_url without its user:password, which goes as basic_auth instead (httpx logs request URLs)."""
        return self.shown_url

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        parts = urlsplit(self.base_url)
        if parts.username is None and parts.password is None:
            return None
        return unquote(parts.username or ""), unquote(parts.password or "")

    def redact(self, error: Exception) -> Exception:
        """The error with the key and the URL's password blanked out of its message (a server may quote the
        key it refused: OpenAI's own "Incorrect API key provided: sk-..." does)."""
        text = str(error)
        secrets = [self.api_key] if self.api_key else []
        password = (self.basic_auth or ("", ""))[1]
        secrets += [password] if password else []
        redacted = text
        for secret in secrets:
            redacted = redacted.replace(secret, "[redacted]")
        return error if redacted == text else type(error)(redacted)

    @property
    def shown_url(self) -> str:
        """base_url for messages, /healthz and logs: without a user:password@ a gateway's URL may carry."""
        parts = urlsplit(self.base_url)
        if parts.username is None and parts.password is None:
            return self.base_url
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def hide_userinfo(url: str) -> str:
    """A URL, even one that does not parse, with what comes before an @ (a user:password) blanked: for the
    messages that must quote a bad URL, shown on /healthz and in the log."""
    return re.sub(r"[^/@]*@", "…@", url, count=1)


def password_on_command_line(url: str | None) -> bool:
    """Whether --engine-url carries a password and came from the command line (not REDRAFT_ENGINE_URL),
    where `ps` shows it to every user of the machine, as the API key would be were it a flag."""
    if not url or url == os.environ.get("REDRAFT_ENGINE_URL"):
        return False
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


PASSWORD_ON_COMMAND_LINE = ("--engine-url holds a password, which `ps` shows to every user of this machine: "
                            "set REDRAFT_ENGINE_URL instead")


def read_api_key(api_key_file: str | Path | None) -> str | None:
    """REDRAFT_ENGINE_API_KEY, else the first line of api_key_file, else None. Raises ValueError naming
    the file when it cannot be read."""
    key = os.environ.get(API_KEY_ENV)
    if key:
        return key.strip()
    if not api_key_file:
        return None
    try:
        lines = Path(api_key_file).read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"engine_api_key_file: cannot read {str(api_key_file)!r} ({exc.strerror})") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ValueError(f"engine_api_key_file: {str(api_key_file)!r} is empty")
    return key
