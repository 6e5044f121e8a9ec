"""The ASGI application: routes for the editor, the websocket, health, metrics, redrafts, version history and
the /v1 engine API."""

from __future__ import annotations

import contextlib
import gc
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from .config import DOC_NAME_RULE, ServerConfig, is_valid_doc_name
from .history import api as history_api
from .hosts import HostCheck
from .metrics import CONTENT_TYPE
from .openai_api import OpenAIApi
from .redrafts import api as redraft_api
from .redrafts.backends import EngineLoader
from .services import Services
from .share import session, share
from .websocket import websocket_endpoint

log = logging.getLogger(__name__)


def error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


async def editor_page(request: Request) -> Response:
    doc = request.path_params.get("doc")
    if doc is not None and not is_valid_doc_name(doc):
        return error(400, "bad_doc_name", DOC_NAME_RULE)
    index = request.app.state.services.config.web_dir / "index.html"
    if not index.is_file():
        return error(503, "web_not_built", f"the editor is not built: {index} is missing (run ./dev run)")
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    body = {
        "status": "ok",
        "instance": services.instance_id,
        "rooms": len(services.rooms.rooms),
        "engine": services.redrafts.backend.status(),
    }
    openai_api: OpenAIApi | None = request.app.state.openai_api
    if openai_api is not None:
        body["openai_api"] = openai_api.stats()
    try:
        body["store"] = {"status": "ok", **await services.store.check()}
    except Exception as exc:
        body["status"] = "degraded"
        body["store"] = {"status": "error", "kind": services.store.kind, "detail": str(exc)}
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


async def metrics(request: Request) -> Response:
    return Response(request.app.state.services.metrics.render(), media_type=CONTENT_TYPE)


def create_app(config: ServerConfig, engine_loader: EngineLoader | None = None) -> Starlette:
    """`engine_loader`: how `--engine local` or `openai` gets its engine (redraft/engines.py composes it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        services = Services.build(config, engine_loader)
        await services.start()
        app.state.services = services
        # What the start made (modules, the app, an engine's model) lives as long as the process: the collector
        # need never look at it again. Each full collection walked all of it, a 30 ms stall of every room once
        # in a while (issue 21); now it walks what was made since. The start's garbage goes first, or it
        # would be kept for good.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.close()

    assets = config.web_dir / "assets"
    openai_api = OpenAIApi() if config.openai_api == "on" else None
    routes = [
        Route("/", editor_page),
        Route("/d/{doc}", editor_page),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/api/docs/{doc}/session", session),
        Route("/api/docs/{doc}/share", share, methods=["POST"]),
        WebSocketRoute("/ws/{doc}", websocket_endpoint),
        *redraft_api.routes,
        *history_api.routes,
        *(openai_api.routes if openai_api is not None else ()),
        Mount("/assets", StaticFiles(directory=assets, check_dir=False), name="assets"),
    ]
    # The editor's bundle is some 650 KB of minified JavaScript: compressed, a first visit loads a third of it.
    # HTTP only: websocket frames pass through untouched.
    middleware = [Middleware(HostCheck, config=config), Middleware(GZipMiddleware, minimum_size=1024)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.openai_api = openai_api
    return app
