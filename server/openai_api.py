"""The engine as an OpenAI-compatible server: GET /v1/models, POST /v1/chat/completions and /v1/completions.

Over whatever backend the server has (in-process engine, Redis workers, a remote OpenAI-compatible server),
so scripts and tools use Redraft's engine as they would vLLM. A stream (SSE) sends text as soon as the engine
has decided it (a diffusion model decides a canvas at a time: progress["committed"]), and the rest at the
end. With `"redraft_snapshots": true` (the openai client's `extra_body`) extra chunks without choices carry
each denoising snapshot in a `redraft` object; a stock client never asks, so never sees one.

Same rules as the rest of the server: the Host check (hosts.py); with --secret a bearer engine token
(`redraft token --engine`), never a document's share token; browsers only from an allowed origin; the
server's redraft queue limit and per-address redraft rate. Errors have OpenAI's shape
{"error": {"message", "type", "param", "code"}}. A client that goes away cancels its engine job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .auth import AuthError, origin_allowed, verify_engine_token
from .openai_request import ApiRequest, BadRequest, parse_chat, parse_completion
from .openai_stream import EventStream, Reply, disconnected
from .ratelimit import BucketMap
from .redrafts.backends import EngineFailed, EngineRejected, EngineUnavailable

log = logging.getLogger(__name__)

INVALID, AUTH, SERVER = "invalid_request_error", "authentication_error", "server_error"


class ApiError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, type_: str = INVALID, param: str | None = None,
                 code: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.retry_after_s = retry_after_s

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(max(1, round(self.retry_after_s)))} if self.retry_after_s is not None else None
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


class OpenAIApi:
    """The /v1 routes and what they share: the per-address buckets and the jobs in flight."""

    def __init__(self):
        self.started_at = int(time.time())
        self.buckets: BucketMap | None = None  # per address; made at the first request, which has the config
        self.num_in_flight = 0  # jobs submitted and not yet ended in the engine (a cancel takes a step)
        self.num_cancelled = 0  # jobs cancelled because their client went away
        self._settling: set[asyncio.Task] = set()
        self.routes = [
            Route("/v1/models", self._endpoint(self.models), methods=["GET"]),
            Route("/v1/models/{model:path}", self._endpoint(self.model), methods=["GET"]),
            Route("/v1/chat/completions", self._endpoint(self.chat), methods=["POST"]),
            Route("/v1/completions", self._endpoint(self.completions), methods=["POST"]),
        ]

    def stats(self) -> dict:
        return {"in_flight": self.num_in_flight, "cancelled": self.num_cancelled}

    def _endpoint(self, handler):
        async def endpoint(request: Request):
            try:
                _authorize(request)
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return endpoint

    # --- routes ------------------------------------------------------------------------------------------

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [self._card(_engine(request))]})

    async def model(self, request: Request) -> JSONResponse:
        engine = _engine(request)
        _check_model(request.path_params["model"], engine)
        return JSONResponse(self._card(engine))

    def _card(self, engine: dict) -> dict:
        card = {"id": engine["id"], "object": "model", "created": self.started_at, "owned_by": "redraft"}
        if engine["context"] is not None:
            card["max_model_len"] = engine["context"]  # vLLM's field: prompt + output tokens per request
        return card

    async def chat(self, request: Request):
        return await self._complete(request, parse_chat, "chat")

    async def completions(self, request: Request):
        return await self._complete(request, parse_completion, "text")

    async def _complete(self, request: Request, parse, kind: str):
        services = request.app.state.services
        engine = _engine(request)
        body = await _read_json(request, services.config.openai_max_body_bytes)
        try:
            parsed: ApiRequest = parse(body, engine["context"])
        except BadRequest as exc:
            raise ApiError(400, str(exc), param=exc.param) from exc
        _check_model(parsed.model, engine)
        self._admit(services, (request.client or ("?",))[0])
        job = await self._submit(services.redrafts.backend, parsed.spec)
        reply = Reply(kind, engine["id"], parsed.include_usage, parsed.wants_snapshots)
        if parsed.is_stream:
            return EventStream(reply.events(job), on_close=lambda finished: self._closed(job, finished))
        return await self._answer(job, reply, request)

    # --- admission, engine -------------------------------------------------------------------------------

    def _admit(self, services, address: str) -> None:
        """The redraft API's limits: the server's queue, and the per-address rate (its own buckets, same rate)."""
        config = services.config
        live = services.redrafts.queue_length() + self.num_in_flight
        if live >= config.redraft_queue_max:
            services.metrics.refused("openai_queue_full")
            raise ApiError(429, f"{live} requests are waiting or running; try again shortly", "requests",
                           code="queue_full", retry_after_s=2.0)
        if self.buckets is None:
            self.buckets = BucketMap(config.redraft_user_per_min / 60.0, config.redraft_user_burst)
        bucket = self.buckets.get(address)
        if not bucket.take():
            services.metrics.refused("openai_rate_limited")
            raise ApiError(429, f"too many requests from this address: at most {config.redraft_user_per_min:g} a "
                           "minute", "requests", code="rate_limit_exceeded", retry_after_s=bucket.seconds_until())

    async def _submit(self, backend, spec: dict):
        spec = {"id": "api-" + secrets.token_urlsafe(9), "seed": secrets.randbits(31), **spec}
        try:
            job = await backend.submit(spec)
        except EngineUnavailable as exc:
            raise ApiError(503, f"the engine is not available: {exc}", SERVER, code="engine_unavailable") from exc
        except EngineRejected as exc:
            raise ApiError(400, str(exc), code="engine_rejected") from exc
        self.num_in_flight += 1
        return job

    async def _answer(self, job, reply: Reply, request: Request):
        """The whole answer at once; a client that leaves first cancels the job."""
        waiting = asyncio.ensure_future(_outcome(job))
        gone = asyncio.ensure_future(disconnected(request.receive))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not waiting.done():
            waiting.cancel()
            self._abandon(job)
            return JSONResponse({}, status_code=499)  # nobody reads it: the client is gone
        self.num_in_flight -= 1
        try:
            outcome = waiting.result()
        except EngineFailed as exc:
            raise ApiError(500, f"the engine failed: {exc}", SERVER, code="engine_failed") from exc
        if outcome.get("status") != "done":
            raise ApiError(503, "the engine stopped before the answer was written (shutting down?)", SERVER,
                           code="engine_unavailable")
        return JSONResponse(reply.whole(outcome))

    def _abandon(self, job) -> None:
        """The client is gone: cancel its job, and count it out once the engine has let it go."""
        job.cancel()
        task = asyncio.get_running_loop().create_task(self._settle(job))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, job) -> None:
        try:
            outcome = await _outcome(job)
        except Exception as exc:  # a failure after the client left: nobody to tell but the log
            log.info("an abandoned /v1 job ended with: %s", exc)
            outcome = {}
        finally:
            self.num_in_flight -= 1
        if outcome.get("status") == "cancelled":
            self.num_cancelled += 1

    def _closed(self, job, finished: bool) -> None:
        """A stream ended: with the job's outcome read (finished), or early, when its client went away."""
        if finished:
            self.num_in_flight -= 1
        else:
            self._abandon(job)


async def _outcome(job) -> dict:
    async for _ in job:  # progress is not needed here, but a job's queue is drained by reading it
        pass
    return await job.result()


def _authorize(request: Request) -> None:
    config = request.app.state.services.config
    if not origin_allowed(request.headers, config.allowed_origins):
        raise ApiError(403, f"origin {request.headers.get('origin')} is not allowed", code="origin")
    authorization = request.headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
    try:
        verify_engine_token(config.secret, token)
    except AuthError as exc:
        raise ApiError(401, str(exc), AUTH, code="invalid_api_key") from exc


def _engine(request: Request) -> dict:
    """The served model's id and context; 503 while the engine is off, loading or failed."""
    services = request.app.state.services
    status = services.redrafts.backend.status()
    if status.get("status") != "ready":
        raise ApiError(503, f"the engine is not ready: {status.get('detail', status.get('status'))}", SERVER,
                       code="engine_unavailable")
    model = str(status.get("model") or "redraft")
    # A checkpoint directory is known by its name, as vLLM's served name defaults to the path's last part; a
    # remote engine's model id is the upstream's own (it may hold a "/": "org/model").
    served = services.config.openai_model_name or (model if status.get("mode") == "openai" else Path(model).name)
    return {"id": served, "names": {served, model}, "context": status.get("context")}


def _check_model(model: str, engine: dict) -> None:
    if model not in engine["names"]:
        raise ApiError(404, f"the model {model!r} does not exist here; this server serves {engine['id']!r}",
                       param="model", code="model_not_found")


async def _read_json(request: Request, max_bytes: int):
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        # also what keeps a cross-site page's "simple" (text/plain) POST out of a loopback server without a secret
        raise ApiError(415, "send the request as application/json", code="unsupported_media_type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"the request body is over {max_bytes} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"the request body is over {max_bytes} bytes", code="request_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc
    except RecursionError:  # 100 KB of "[" is JSON nested 100,000 deep: the decoder gives up, as we do here
        raise ApiError(400, "the body is not JSON: it is nested too deep") from None
