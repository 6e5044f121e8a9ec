"""Where redrafts run: nowhere (`off`), in this process (`local`), on GPU workers over Redis (`redis`), or on an
OpenAI-compatible server (`openai`).

A backend takes a redraft spec (a JSON-able dict, jobs/spec.py) and gives back a job: an async iterator of
progress dicts, an awaitable outcome dict, and a way to cancel (jobs/protocol.py says their shape). The server
knows nothing else about the engine and imports none of it: `local` and `openai` are handed an `EngineLoader`
by the command that composes the process (redraft/engines.py), so a server with `--engine off` never needs
torch, and the server's tests run without the engine installed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from jobs.protocol import describe
from jobs.spec import RequestError
from jobs.tasks import EVERY_TASK

from .engine_model import UNKNOWN, EngineModel, display_name, from_status

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """No engine can take the job now (off, loading, no worker, crashed): HTTP 503."""


class EngineRejected(ValueError):
    """The engine refused the request itself (e.g. the passage does not fit the context): HTTP 400."""


class EngineFailed(Exception):
    """A job that was taken did not finish (engine error, out of memory, worker lost)."""


class EngineJob(Protocol):
    def __aiter__(self) -> AsyncIterator[dict]: ...

    async def result(self) -> dict:
        """{"status": "done" | "cancelled", "text", "steps", "tokens", "timings"}; raises EngineFailed."""
        ...

    def cancel(self) -> None:
        """Takes effect between two denoising steps."""
        ...


class EngineBackend(Protocol):
    mode: str

    async def start(self) -> None:
        """Begins loading or connecting; returns at once (a checkpoint takes minutes to load)."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict:
        """{"mode", "status": "ready" | "loading" | "off" | "unavailable" | "error", "detail", ...}"""
        ...

    def model(self) -> EngineModel:
        """The engine's model and the tasks it declares, as far as known now (every task until then)."""
        ...

    async def submit(self, spec: dict) -> EngineJob:
        """Raises EngineUnavailable or EngineRejected; nothing is queued then."""
        ...


class TextEngine(Protocol):
    """What `local` and `openai` run on: engine.api.Engine or engine.remote.engine.RemoteEngine."""

    def redraft(self, spec: dict):
        """A generation: an async iterator of progress dicts with `result()` and `cancel()`. Raises
        RequestError (the spec's fault) or RuntimeError (shutting down)."""
        ...

    def status(self) -> dict: ...

    async def close(self) -> None: ...


class EngineLoader(Protocol):
    """How a `local` or `openai` backend gets its engine; the command composing the server provides it."""

    def settings(self):
        """The engine's settings, checked; raises ValueError for a bad one (trying again will not help)."""
        ...

    async def load(self, settings) -> TextEngine:
        """Loads the model or connects to the engine server; raises whatever stops it (no torch, out of
        memory, unreachable...)."""
        ...


class OffBackend:
    mode = "off"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def status(self) -> dict:
        return {"mode": self.mode, "status": "off", "detail": "redrafts are turned off on this server (--engine off)"}

    def model(self) -> EngineModel:
        return UNKNOWN

    async def submit(self, spec: dict) -> EngineJob:
        raise EngineUnavailable("redrafts are turned off on this server: start it with --engine local or redis")


class LocalJob:
    """Adapts a TextEngine's generation to EngineJob, turning engine errors into EngineFailed."""

    def __init__(self, generation):
        self.generation = generation

    def __aiter__(self):
        return self.generation.__aiter__()

    async def result(self) -> dict:
        try:
            return await self.generation.result()
        except Exception as exc:
            raise EngineFailed(describe(exc)) from exc

    def cancel(self) -> None:
        self.generation.cancel()


class LocalBackend:
    """The engine in this process, on its own thread; the model loads in the background at start."""

    mode = "local"

    def __init__(self, model: str | None, loader: EngineLoader):
        self.model_source = model  # what --model (or --engine-model) names, shown until the engine says
        self.loader = loader
        self.engine: TextEngine | None = None
        self.error: str | None = None
        self._loading: asyncio.Task | None = None

    async def start(self) -> None:
        self._loading = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        try:
            self.engine = await self.loader.load(self.loader.settings())
            log.info("engine ready: %s", self.engine.status())
        except Exception as exc:  # ImportError (no torch), a bad setting, a missing checkpoint, out of memory...
            self.error = describe(exc)
            log.error("the engine could not be loaded: %s", self.error)

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        if self.engine is not None:
            await self.engine.close()

    def status(self) -> dict:
        model = self.model_source
        if self.error is not None:
            return {"mode": self.mode, "status": "error", "model": model, "detail": self.error}
        if self.engine is None:
            return {"mode": self.mode, "status": "loading", "model": model, "detail": "the model is loading"}
        return {"mode": self.mode, "status": "ready", **self.engine.status()}

    def model(self) -> EngineModel:
        """Once loaded, the engine's own (its checkpoint's declaration; every task for a remote server); until
        then the configured name and every task: a request meanwhile is refused as the model is loading."""
        if self.engine is not None:
            return from_status(self.engine.status()) or UNKNOWN
        name = self.model_source
        return EngineModel(display_name(name) if self.mode == "local" else name, EVERY_TASK)

    async def submit(self, spec: dict) -> EngineJob:
        if self.engine is None:
            raise EngineUnavailable(self.status()["detail"])
        try:
            return LocalJob(self.engine.redraft(spec))
        except RequestError as exc:
            raise EngineRejected(str(exc)) from exc
        except RuntimeError as exc:  # shutting down
            raise EngineUnavailable(str(exc)) from exc


class OpenAIBackend(LocalBackend):
    """An OpenAI-compatible server as the engine (engine.remote.engine). It connects in the background and keeps
    trying while the server cannot be reached or refuses, so that the two may start in any order (compose)."""

    mode = "openai"
    RETRY_S = (1.0, 30.0)  # first and longest wait between two tries (doubling)

    def __init__(self, model: str | None, loader: EngineLoader):
        super().__init__(model, loader)
        self.is_retrying = False

    async def _load(self) -> None:
        try:
            settings = self.loader.settings()
        except ValueError as exc:  # a bad setting: trying again will not help
            self.error = str(exc)
            log.error("the engine server cannot be used: %s", self.error)
            return
        wait = self.RETRY_S[0]
        while True:
            try:
                self.engine = await self.loader.load(settings)
            except Exception as exc:  # RemoteError: unreachable, a refused key, no model to choose
                detail = describe(exc)
                if detail != self.error:
                    log.error("the engine server cannot be used (trying again): %s", detail)
                self.error, self.is_retrying = detail, True
                await asyncio.sleep(wait)
                wait = min(2 * wait, self.RETRY_S[1])
                continue
            self.error, self.is_retrying = None, False
            log.info("engine server ready: %s", self.engine.status())
            return

    def status(self) -> dict:
        if self.engine is None and self.is_retrying:
            detail = f"{self.error} (trying again)"
            return {"mode": self.mode, "status": "unavailable", "model": self.model_source, "detail": detail}
        return super().status()

