"""Share tokens: a signed, expiring grant of one role on one document (or all, "*")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

ROLES = ("edit", "read")
ALL_DOCS = "*"
MAX_EXP = 1 << 53  # seconds; exactly representable as a float, some 285 million years out


class AuthError(Exception):
    """A token that does not grant access, with the reason to tell the client."""


@dataclass(frozen=True)
class Grant:
    role: str
    expires_at: float | None  # unix seconds; None never expires

    @property
    def can_edit(self) -> bool:
        return self.role == "edit"


OPEN_GRANT = Grant("edit", None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def mint_token(secret: str, doc: str, role: str, ttl_s: float | None, now: float | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    claims: dict = {"doc": doc, "role": role}
    if ttl_s is not None:
        claims["exp"] = int((time.time() if now is None else now) + ttl_s)
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_sign(secret, body)}"


def verify_token(secret: str | None, token: str | None, doc: str, now: float | None = None) -> Grant:
    """The grant a token gives on `doc`; without a secret every client may edit."""
    if secret is None:
        return OPEN_GRANT
    if not token:
        raise AuthError("this server needs a share token: add ?token=... to the address")
    body, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, body).encode()):
        raise AuthError("the token's signature is not valid for this server")
    try:
        claims = json.loads(_unb64(body))
        role, token_doc, exp = claims["role"], claims["doc"], claims.get("exp")
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError("the token is malformed") from exc
    if not isinstance(exp, (int, float, type(None))) or isinstance(exp, bool) or not -MAX_EXP <= (exp or 0) <= MAX_EXP:
        # A string, a list or 10**400 (which float() cannot hold) is a malformed token, not a server error.
        raise AuthError("the token is malformed: exp must be a time in seconds")
    if not isinstance(role, str) or role not in ROLES:
        raise AuthError(f"the token's role {role!r} is unknown")
    if token_doc not in (doc, ALL_DOCS):
        raise AuthError(f"the token is for document {token_doc!r}, not {doc!r}")
    if exp is not None and exp <= (time.time() if now is None else now):
        raise AuthError("the token has expired")
    return Grant(role, None if exp is None else float(exp))


def origin_allowed(headers, allowed: tuple[str, ...]) -> bool:
    """Whether a request's Origin may act here: the server's own, or one on the allow-list. Requests
    without one are not from a browser (browsers send Origin on websocket handshakes and on POSTs),
    so no cross-site page can be behind them."""
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    return origin in allowed or origin in (f"http://{host}", f"https://{host}")
