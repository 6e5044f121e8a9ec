"""HTTP routes of the redraft API: request, history, status, accept, undo, redo, cancel.

Same token rules as the websocket (`?token=` or `Authorization: Bearer`); read-only grants may look but not
request or change redrafts. Requests must be JSON and, from a browser, come from an allowed origin: a
cross-site form cannot trigger a redraft.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import AuthError, origin_allowed, verify_token
from ..config import DOC_NAME_RULE, is_valid_doc_name
from . import attribution
from .request import RedraftError, parse_person
from .service import HISTORY_PAGE, MAX_HISTORY_PAGE, RedraftService

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, detail: str, retry_after_s: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(retry_after_s)))} if retry_after_s is not None else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


READ_ONLY = "read-only: this link can view the document but not ask for redrafts"


def route(handler, needs_edit: bool, read_only_detail: str = READ_ONLY):
    """Checks the document name, origin and token, then runs the handler; RedraftError becomes JSON. The
    grant is `request.state.grant` (the version history's routes use this too: one set of token rules)."""

    async def endpoint(request: Request):
        services = request.app.state.services
        config = services.config
        doc = request.path_params["doc"]
        if not is_valid_doc_name(doc):
            return _error(400, "bad_doc_name", DOC_NAME_RULE)
        if not origin_allowed(request.headers, config.allowed_origins):
            return _error(403, "origin", f"origin {request.headers.get('origin')} is not allowed")
        token = request.query_params.get("token")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        try:
            grant = verify_token(config.secret, token, doc)
        except AuthError as exc:
            return _error(401, "unauthorized", str(exc))
        if needs_edit and not grant.can_edit:
            return _error(403, "read_only", read_only_detail)
        service: RedraftService = services.redrafts
        # The per-user rate is per client address: anyone holding a link can mint more (POST .../share), so a
        # token is not a user, and keying by token let one person multiply the limit. The address is what
        # the connection limits count too; people behind one NAT share it.
        user_key = (request.client or ("?",))[0]
        request.state.grant = grant  # whose token: its signed name is the only verified identity
        try:
            return await handler(request, service, doc, user_key)
        except RedraftError as exc:
            return _error(exc.status, exc.code, exc.detail, exc.retry_after_s)

    return endpoint


async def _create(request: Request, service: RedraftService, doc: str, user_key: str):
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":  # RFC 9110: no case
        raise RedraftError(415, "not_json", "send the request as application/json")
    raw = await _read_body(request)
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise RedraftError(400, "bad_json", f"the body is not JSON: {exc}") from exc
    redraft = await service.create(doc, body, user_key, verified_name=request.state.grant.name)
    return JSONResponse({"id": redraft.id, "status": redraft.status}, status_code=202)


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RedraftError(413, "body_too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _status(request: Request, service: RedraftService, doc: str, user_key: str):
    return JSONResponse(await service.view(doc, request.path_params["id"]))


async def _history(request: Request, service: RedraftService, doc: str, user_key: str):
    """`?limit=` (1..200, default 50) newest first; `?before=` (epoch s) pages back past a `created_at`."""
    try:
        limit = int(request.query_params.get("limit", HISTORY_PAGE))
        before = request.query_params.get("before")
        before = float(before) if before is not None else None
    except ValueError as exc:
        raise RedraftError(400, "bad_request", "limit must be an integer and before a number (epoch seconds)") from exc
    if not 1 <= limit <= MAX_HISTORY_PAGE:
        raise RedraftError(400, "bad_request", f"limit must be from 1 to {MAX_HISTORY_PAGE}")
    return JSONResponse({"redrafts": await service.history(doc, limit, before)})


def _command(action: str):
    async def handler(request: Request, service: RedraftService, doc: str, user_key: str):
        return JSONResponse(await service.command(doc, request.path_params["id"], action, await _acting(request)))

    return handler


async def _acting(request: Request) -> dict | None:
    """Who acts, from an optional JSON body `{"by": {"name", "color"}}` (shown to others, e.g. `rejected_by`,
    and written in the history, unverified), or the token's signed name (verified), which wins."""
    raw = await _read_body(request)
    verified_name = request.state.grant.name
    if not raw.strip():
        return None if verified_name is None else attribution.person({}, verified_name)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise RedraftError(400, "bad_json", f"the body is not JSON: {exc}") from exc
    claimed = parse_person(body.get("by")) if isinstance(body, dict) else None
    return claimed if verified_name is None else attribution.person(claimed, verified_name)


routes = [
    Route("/api/docs/{doc}/redrafts", route(_create, needs_edit=True), methods=["POST"]),
    Route("/api/docs/{doc}/redrafts", route(_history, needs_edit=False), methods=["GET"]),
    Route("/api/docs/{doc}/redrafts/{id}", route(_status, needs_edit=False), methods=["GET"]),
    Route("/api/docs/{doc}/redrafts/{id}", route(_command("cancel"), needs_edit=True), methods=["DELETE"]),
    Route("/api/docs/{doc}/redrafts/{id}/accept", route(_command("accept"), needs_edit=True), methods=["POST"]),
    Route("/api/docs/{doc}/redrafts/{id}/undo", route(_command("undo"), needs_edit=True), methods=["POST"]),
    Route("/api/docs/{doc}/redrafts/{id}/redo", route(_command("redo"), needs_edit=True), methods=["POST"]),
]
