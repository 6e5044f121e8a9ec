"""Tokens: a signed, expiring grant of one role on one document (or all, "*"), or of the engine's API.

Both kinds are signed with the server's secret and neither opens what the other does: a share link handed to
a collaborator must not let them spend the GPU through /v1, and an engine token given to a script must not
open documents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import unicodedata
from dataclasses import dataclass

ROLES = ("edit", "read")
ALL_DOCS = "*"
ENGINE_SCOPE = "engine"  # the `scope` claim of an engine token (document tokens have none)
MAX_EXP = 1 << 53  # seconds; exactly representable as a float, some 285 million years out
MAX_NAME_CHARS = 64  # as awareness_trust bounds `user.name`: one rule for every name history shows


class AuthError(Exception):
    """A token that does not grant access, with the reason to tell the client."""


@dataclass(frozen=True)
class Grant:
    role: str
    expires_at: float | None  # unix seconds; None never expires
    name: str | None = None  # the holder's display name, signed into the token: a verified identity in history

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


def mint_token(
    secret: str, doc: str, role: str, ttl_s: float | None, now: float | None = None, name: str | None = None
) -> str:
    """A share token; `name` (only whoever holds the secret can sign one) is the holder's verified identity."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    claims = {"doc": doc, "role": role}
    if name is not None:
        if not is_valid_name(name):
            raise ValueError(f"name must be 1 to {MAX_NAME_CHARS} printable characters, not {name!r}")
        claims["name"] = name
    return _mint(secret, claims, ttl_s, now)


def is_valid_name(name) -> bool:
    """A display name: 1..64 characters, not blank, none of them a control character (a name is shown in
    lists and tooltips; a newline or a bidi override there would let one name pass for another)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_CHARS
        and bool(name.strip())
        and not any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name)
    )


def mint_engine_token(secret: str, ttl_s: float | None, now: float | None = None) -> str:
    """A token for the OpenAI-compatible API (/v1): it opens no document."""
    return _mint(secret, {"scope": ENGINE_SCOPE}, ttl_s, now)


def _mint(secret: str, claims: dict, ttl_s: float | None, now: float | None) -> str:
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
    claims = _claims(secret, token)
    if claims.get("scope") == ENGINE_SCOPE:
        raise AuthError("this is an engine token: it opens the /v1 API, not documents")
    try:
        role, token_doc, exp = claims["role"], claims["doc"], claims.get("exp")
    except KeyError as exc:
        raise AuthError("the token is malformed") from exc
    if not isinstance(role, str) or role not in ROLES:
        raise AuthError(f"the token's role {role!r} is unknown")
    if token_doc not in (doc, ALL_DOCS):
        raise AuthError(f"the token is for document {token_doc!r}, not {doc!r}")
    _check_expiry(exp, now)
    name = claims.get("name")
    if name is not None and not is_valid_name(name):
        raise AuthError("the token is malformed: its name must be 1 to 64 printable characters")
    return Grant(role, None if exp is None else float(exp), name)


def verify_engine_token(secret: str | None, token: str | None, now: float | None = None) -> None:
    """Raises AuthError unless the token is an engine token; without a secret every client may use the API."""
    if secret is None:
        return
    if not token:
        raise AuthError("this server needs an engine token: send Authorization: Bearer <token> (redraft token --engine)")
    claims = _claims(secret, token)
    if claims.get("scope") != ENGINE_SCOPE:
        raise AuthError("this is a document share token; the /v1 API needs an engine token (redraft token --engine)")
    _check_expiry(claims.get("exp"), now)


def _claims(secret: str, token: str) -> dict:
    """The signed claims, with a valid `exp` (or none); raises AuthError."""
    body, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, body).encode()):
        raise AuthError("the token's signature is not valid for this server")
    try:
        claims = json.loads(_unb64(body))
    except ValueError as exc:
        raise AuthError("the token is malformed") from exc
    if not isinstance(claims, dict):
        raise AuthError("the token is malformed")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float, type(None))) or isinstance(exp, bool) or not -MAX_EXP <= (exp or 0) <= MAX_EXP:
        # A string, a list or 10**400 (which float() cannot hold) is a malformed token, not a server error.
        raise AuthError("the token is malformed: exp must be a time in seconds")
    return claims


def _check_expiry(exp: float | None, now: float | None) -> None:
    if exp is not None and exp <= (time.time() if now is None else now):
        raise AuthError("the token has expired")


def origin_allowed(headers, allowed: tuple[str, ...]) -> bool:
    """Whether a request's Origin may act here: the server's own, or one on the allow-list. Requests
    without one are not from a browser (browsers send Origin on websocket handshakes and on POSTs),
    so no cross-site page can be behind them."""
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    return origin in allowed or origin in (f"http://{host}", f"https://{host}")
