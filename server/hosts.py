"""Which `Host` a request may name when there is no secret: the defence against DNS rebinding.

Without `--secret` every request on loopback may edit every document. A page on `evil.example`
whose DNS name is re-pointed at 127.0.0.1 is, to the browser, same-origin with itself, so the
Origin check lets it in; only the `Host` it sends (`evil.example:8000`) gives it away. So without
a secret the server answers only Hosts that are loopback (an IP address, `localhost`, or a name
under `.localhost`, which browsers resolve themselves) or the host of an allowed origin. With a
secret the token is what protects, and any Host (a proxy's public name) is served.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from .config import ServerConfig, is_loopback
from .protocol import CLOSE_FORBIDDEN_ORIGIN

MISDIRECTED = 421  # RFC 9110: the request was directed at a server that will not answer for this host


def host_name(header: str) -> str:
    """`[::1]:8000` -> `::1`, `LocalHost.:8000` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


def is_host_allowed(header: str | None, config: ServerConfig) -> bool:
    if config.secret is not None or header is None:  # no Host: not a browser, so not a rebinding page
        return True
    name = host_name(header)
    if is_loopback(name) or name.endswith(".localhost") or name == config.host.lower():
        return True
    return any(urlsplit(origin).hostname == name for origin in config.allowed_origins)


class HostCheck:
    """ASGI middleware: refuses HTTP with 421 and websockets with a 4403 close naming the Host."""

    def __init__(self, app, config: ServerConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        raw = headers.get(b"host")
        host = raw.decode("latin-1") if raw is not None else None
        if is_host_allowed(host, self.config):
            return await self.app(scope, receive, send)
        reason = f"host {host} is not served without --secret (DNS rebinding)"[:120]
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN_ORIGIN, "reason": reason})
            return
        body = json.dumps({"error": "misdirected", "detail": reason}).encode()
        await send({
            "type": "http.response.start",
            "status": MISDIRECTED,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})
