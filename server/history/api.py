"""HTTP routes of the version history: list versions (paged), read one, diff it, restore it.

Same token rules as the redraft API (`?token=` or `Authorization: Bearer`, checked by `auth.verify_token`);
a read-only grant may list, read and diff but not restore. From a browser, requests must come from an
allowed origin: a cross-site page holding a link cannot restore a version.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..redrafts.api import route
from ..redrafts.request import RedraftError
from . import reading, restore
from .versions import diff_ops

VERSIONS_PAGE = 50
MAX_VERSIONS_PAGE = 200
READ_ONLY = "read-only: this link can view the history but not restore a version"
MAX_SEQ = 1 << 62  # seqs are 64-bit integers in both stores: a larger "id" is no version, not a server error


def _route(handler, needs_edit: bool):
    """The redraft API's checks (document name, origin, token; read-only refused where it must edit), then
    the handler with the services; a server that keeps no history says so."""

    async def versions_handler(request: Request, service, doc: str, user_key: str):
        services = request.app.state.services
        if services.config.history == "off":
            raise RedraftError(404, "history_off", "this server keeps no version history (it runs with --history off)")
        return await handler(request, services, doc, request.state.grant)

    return route(versions_handler, needs_edit, READ_ONLY)


def _seq(raw: str | None, name: str) -> int:
    """A version id from the URL: a positive integer (anything else is a 400 naming the parameter)."""
    try:
        value = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RedraftError(400, "bad_request", f"{name} must be a version id (a positive integer)") from None
    if not 1 <= value <= MAX_SEQ:
        raise RedraftError(400, "bad_request", f"{name} must be a version id (a positive integer)")
    return value


async def _list(request: Request, services, doc: str, grant):
    """`?limit=` (1..200, default 50) newest first; `?before=` (the `next` of the previous page) pages back."""
    query = request.query_params
    try:
        limit = int(query.get("limit", VERSIONS_PAGE))
    except ValueError:
        raise RedraftError(400, "bad_request", "limit must be an integer") from None
    if not 1 <= limit <= MAX_VERSIONS_PAGE:
        raise RedraftError(400, "bad_request", f"limit must be from 1 to {MAX_VERSIONS_PAGE}")
    before = _seq(query["before"], "before") if "before" in query else None
    versions, next_before = await reading.page(
        services.store, doc, limit, before, services.config.history_pause_s
    )
    return JSONResponse({"versions": [version.to_json() for version in versions], "next": next_before})


async def _read(request: Request, services, doc: str, grant):
    version_id = _seq(request.path_params["id"], "the version id")
    version = await reading.find(services.store, doc, version_id, services.config.history_pause_s)
    text = await reading.text_at(services.store, doc, version_id)
    return JSONResponse({**version.to_json(), "text": text})


async def _diff(request: Request, services, doc: str, grant):
    """The ops that turn the version's text into `?against=` (current, the default, or another version id)."""
    version_id = _seq(request.path_params["id"], "the version id")
    pause_s = services.config.history_pause_s
    await reading.find(services.store, doc, version_id, pause_s)
    old = await reading.text_at(services.store, doc, version_id)
    against = request.query_params.get("against", "current")
    if against == "current":
        new = await reading.current_text(services.rooms, doc)
    else:
        other = _seq(against, "against")
        await reading.find(services.store, doc, other, pause_s)
        new = await reading.text_at(services.store, doc, other)
    return JSONResponse({"ops": diff_ops(old, new)})


async def _restore(request: Request, services, doc: str, grant):
    version_id = _seq(request.path_params["id"], "the version id")
    body = await restore.read_body(request)
    done = await restore.restore(services, doc, version_id, grant, body, request)
    return JSONResponse({"restore": done})


routes = [
    Route("/api/docs/{doc}/versions", _route(_list, needs_edit=False), methods=["GET"]),
    Route("/api/docs/{doc}/versions/{id}", _route(_read, needs_edit=False), methods=["GET"]),
    Route("/api/docs/{doc}/versions/{id}/diff", _route(_diff, needs_edit=False), methods=["GET"]),
    Route("/api/docs/{doc}/versions/{id}/restore", _route(_restore, needs_edit=True), methods=["POST"]),
]
