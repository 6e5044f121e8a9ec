"""Where redrafts run: nowhere (`off`), in this process (`local`), on GPU workers over Redis (`redis`), or on an
OpenAI-compatible server (`openai`).

A backend takes a redraft spec (a JSON-able dict, see engine/runtime/redrafts.py) and gives back a job: an async
iterator of progress dicts, an awaitable outcome dict, and a way to cancel. The server knows nothing else
about the engine; `local` imports `engine.api` lazily so that a server with `--engine off` never needs torch
(nor does `openai`: engine.remote.engine is torch-free).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

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
    """Adapts engine.api.Generation to EngineJob, turning engine errors into EngineFailed."""

    def __init__(self, generation):
        self.generation = generation

    def __aiter__(self):
        return self.generation.__aiter__()

    async def result(self) -> dict:
        try:
            return await self.generation.result()
        except Exception as exc:
            raise EngineFailed(_describe(exc)) from exc

    def cancel(self) -> None:
        self.generation.cancel()


class LocalBackend:
    """The engine in this process, on its own thread; the model loads in the background at start."""

    mode = "local"

    def __init__(self, engine_config: dict):
        self.engine_config = engine_config  # fields of engine.api.EngineConfig
        self.engine = None
        self.error: str | None = None
        self._loading: asyncio.Task | None = None

    async def start(self) -> None:
        self._loading = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        try:
            from engine.api import Engine, EngineConfig

            self.engine = await Engine.load(EngineConfig(**self.engine_config))
            log.info("engine ready: %s", self.engine.status())
        except Exception as exc:  # ImportError (no torch), a missing checkpoint, out of memory...
            self.error = _describe(exc)
            log.error("the engine could not be loaded: %s", self.error)

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        if self.engine is not None:
            await self.engine.close()

    def status(self) -> dict:
        model = self.engine_config.get("model")
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
        name = self.engine_config.get("model")
        return EngineModel(display_name(name) if self.mode == "local" else name, EVERY_TASK)

    async def submit(self, spec: dict) -> EngineJob:
        if self.engine is None:
            raise EngineUnavailable(self.status()["detail"])
        from engine.api import RequestError

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

    def __init__(self, engine_config: dict, api_key_file: str | None = None):
        super().__init__(engine_config)  # fields of engine.api.RemoteConfig, but the key
        self.api_key_file = api_key_file
        self.is_retrying = False

    async def _load(self) -> None:
        from engine.api import RemoteConfig, RemoteEngine, read_api_key

        try:
            config = RemoteConfig(**self.engine_config, api_key=read_api_key(self.api_key_file))
        except ValueError as exc:  # a bad setting: trying again will not help
            self.error = str(exc)
            log.error("the engine server cannot be used: %s", self.error)
            return
        wait = self.RETRY_S[0]
        while True:
            try:
                self.engine = await RemoteEngine.load(config)
            except Exception as exc:  # RemoteError: unreachable, a refused key, no model to choose
                detail = _describe(exc)
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
            model = self.engine_config.get("model")
            return {"mode": self.mode, "status": "unavailable", "model": model, "detail": detail}
        return super().status()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "out of memory" in text.lower():
        return f"the GPU ran out of memory ({text.splitlines()[0]}); try fewer steps or a shorter passage"
    return text
