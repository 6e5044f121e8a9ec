"""Any replica answers for any redraft: this process's own, judged now, or one another replica holds, from the
view its owner last published (directory.py); commands on those are forwarded to the owner."""

from __future__ import annotations

import logging

from . import attribution
from .directory import OwnerUnreachable
from .request import RedraftError

log = logging.getLogger(__name__)


async def view(service, doc: str, redraft_id: str) -> dict:
    """The redraft's HTTP resource, from this process or, when another replica holds it, its last view."""
    if redraft_id in service.redrafts:
        return service.to_json(service.get(doc, redraft_id))
    return (await _elsewhere(service, doc, redraft_id))["view"]


async def history(service, doc: str, limit: int, before: float | None) -> list[dict]:
    """The document's redrafts, newest first: this process's, with undo and redo judged now, and those
    other replicas hold, as their owners last published them."""
    views = {
        r.id: service.to_json(r)
        for r in reversed(service.redrafts.values())
        if r.doc == doc and (before is None or r.created < before)
    }
    try:
        for view in await service.directory.history(doc, limit, before):
            views.setdefault(view["id"], view)
    except Exception as exc:  # Redis away: this replica's own still answer
        log.warning("listing other replicas' redrafts failed: %s", exc)
    return sorted(views.values(), key=lambda view: view["created_at"], reverse=True)[:limit]


async def command(service, doc: str, redraft_id: str, action: str, by: dict | None) -> dict:
    """accept, undo, redo or cancel, run here or by the replica that holds the redraft."""
    if redraft_id in service.redrafts:
        return service.to_json(await service.commands[action](doc, redraft_id, by=by))
    where = await _elsewhere(service, doc, redraft_id)
    try:
        status, body = await service.directory.forward(where["owner"], doc, redraft_id, action, by)
    except OwnerUnreachable as exc:
        raise RedraftError(503, "owner_unreachable", f"{exc}; the redraft cannot be changed any more") from exc
    if status != 200:
        raise RedraftError(status, body.get("error", "error"), body.get("detail", ""), body.get("retry_after_s"))
    return body


async def run_command(service, doc: str, redraft_id: str, action: str, by: dict | None) -> tuple[int, dict]:
    """A command another replica forwarded: answered as this process's HTTP API would."""
    if action not in service.commands:
        return 400, {"error": "bad_request", "detail": f"unknown redraft action {action!r}"}
    try:
        # `by` was resolved by the replica that took the request (its token's name, verified)
        return 200, service.to_json(await service.commands[action](doc, redraft_id, by=attribution.trusted_person(by)))
    except RedraftError as exc:
        return exc.status, {"error": exc.code, "detail": exc.detail, "retry_after_s": exc.retry_after_s}


async def _elsewhere(service, doc: str, redraft_id: str) -> dict:
    try:
        where = await service.directory.lookup(redraft_id)
    except Exception as exc:  # Redis away: say so rather than pretend the redraft does not exist
        raise RedraftError(503, "directory_unavailable", f"cannot look the redraft up: {exc}") from exc
    if where is None or where["doc"] != doc:
        raise unknown(doc, redraft_id)
    return where


def unknown(doc: str, redraft_id: str) -> RedraftError:
    return RedraftError(404, "unknown_redraft", f"no redraft {redraft_id!r} in document {doc!r}")
