"""What the editor asks before it opens a document: the caller's role, and share links to hand out.

`GET /api/docs/{doc}/session` tells the page whether it may edit (so a read-only link
shows a read-only editor instead of edits the server would refuse), whether the
engine is on, and which model it runs with the tasks it declares. `POST /api/docs/{doc}/share` mints a link for the same document: an edit
grant may hand out edit or read links, a read grant only read links. Grants are checked
by the same rules as the websocket (`auth.verify_token`); the token comes as `?token=`
or `Authorization: Bearer`.
"""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from .auth import ROLES, AuthError, Grant, mint_token, verify_token
from .awareness_trust import AI_CLIENT_ID_MIN
from .config import DOC_NAME_RULE, is_valid_doc_name
from .services import Services

SHARE_TTL_S = 7 * 24 * 3600  # a week: long enough to pass around, short enough that a leaked link lapses
MAX_SHARE_BODY_BYTES = 4096


def error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def request_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token")


def engine_status(services: Services) -> dict:
    """The engine part of `/healthz`: whether the page should offer redrafts at all."""
    return services.redrafts.backend.status()


def origin_allowed(request: Request) -> bool:
    """As for the websocket: a browser page from elsewhere may not mint links with a token it was handed."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    allowed = request.app.state.services.config.allowed_origins
    return origin is None or origin in (*allowed, f"http://{host}", f"https://{host}")


def _grant(request: Request, doc: str) -> Grant | JSONResponse:
    """The caller's grant on `doc`, or the error response that refuses it."""
    if not is_valid_doc_name(doc):
        return error(400, "bad_doc_name", DOC_NAME_RULE)
    services: Services = request.app.state.services
    try:
        return verify_token(services.config.secret, request_token(request), doc)
    except AuthError as exc:
        return error(401, "unauthorized", str(exc))


async def session(request: Request) -> JSONResponse:
    doc = request.path_params["doc"]
    grant = _grant(request, doc)
    if isinstance(grant, JSONResponse):
        return grant
    services: Services = request.app.state.services
    return JSONResponse({
        "doc": doc,
        "role": grant.role,
        # The token's signed name (history shows it as verified), or None: the editor then uses the name
        # its user typed, which history marks as unverified.
        "name": grant.name,
        "secret": services.config.secret is not None,
        "engine": engine_status(services),
        # The engine's model and what it declares: the palette offers only these tasks, names the model and
        # shows its note. Every task, and no name, until the server knows (--engine off, no worker seen yet).
        "model": services.redrafts.backend.model().to_json(),
        # Awareness ids from here up are the server's own peers (the AI): the only ones whose previews and
        # suggestions the editor shows.
        "ai_client_id_min": AI_CLIENT_ID_MIN,
    })


async def _requested_role(request: Request) -> str | JSONResponse:
    body = await request.body()
    if len(body) > MAX_SHARE_BODY_BYTES:
        return error(413, "too_large", f"the request body is limited to {MAX_SHARE_BODY_BYTES} bytes")
    try:
        role = json.loads(body or b"{}").get("role", "edit")
    except (ValueError, AttributeError):
        return error(400, "bad_request", 'the body must be a JSON object like {"role": "read"}')
    if role not in ROLES:
        return error(400, "bad_role", f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


async def share(request: Request) -> JSONResponse:
    doc = request.path_params["doc"]
    grant = _grant(request, doc)
    if isinstance(grant, JSONResponse):
        return grant
    if not origin_allowed(request):
        return error(403, "origin", f"origin {request.headers.get('origin')} is not allowed")
    role = await _requested_role(request)
    if isinstance(role, JSONResponse):
        return role
    secret = request.app.state.services.config.secret
    if secret is None:
        return error(409, "no_secret", "this server has no secret, so it serves loopback only and everyone "
                     "there edits without a token: share the page's address as it is")
    if role == "edit" and not grant.can_edit:
        return error(403, "forbidden", "a read-only link can only share read-only links")
    now = int(time.time())
    expires_at = now + SHARE_TTL_S
    if grant.expires_at is not None:
        expires_at = min(expires_at, int(grant.expires_at))  # a link never outlives the one it came from
    # No name: a link is handed to someone else, who must not write history in its minter's name.
    token = mint_token(secret, doc, role, ttl_s=expires_at - now, now=now)
    url = str(request.base_url.replace(query="", fragment="")).rstrip("/") + f"/d/{doc}?token={token}"
    return JSONResponse({"token": token, "url": url, "expires_at": expires_at})
