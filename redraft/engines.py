"""The engine a `redraft serve` process runs its redrafts on, handed to the server as an EngineLoader
(server/redrafts/backends.py): the server imports no engine module, so this command is where they meet.

Both loaders import the engine when they run, in the background after the server started: `--engine off` never
needs torch, and `--engine openai` never does (engine.remote is torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.config import ServerConfig


@dataclass(frozen=True)
class LocalEngineLoader:
    """`--engine local`: the model in this process (engine.api.Engine)."""

    fields: dict  # of engine.api.EngineConfig

    def settings(self):
        from engine.api import EngineConfig

        return EngineConfig(**self.fields)

    async def load(self, settings):
        from engine.api import Engine

        return await Engine.load(settings)


@dataclass(frozen=True)
class RemoteEngineLoader:
    """`--engine openai`: an OpenAI-compatible server (engine.remote.engine.RemoteEngine)."""

    fields: dict  # of engine.remote.config.RemoteConfig, but the key
    api_key_file: str | None = None

    def settings(self):
        from engine.remote.config import RemoteConfig, read_api_key

        return RemoteConfig(**self.fields, api_key=read_api_key(self.api_key_file))

    async def load(self, settings):
        from engine.remote.engine import RemoteEngine

        return await RemoteEngine.load(settings)


def engine_loader(config: ServerConfig) -> LocalEngineLoader | RemoteEngineLoader | None:
    """The loader `--engine local` or `openai` needs; None for the others (off, redis)."""
    if config.engine == "local":
        return LocalEngineLoader({"model": config.model, "device": config.engine_device,
                                  "max_batch": config.engine_max_batch, "quantize": config.engine_quantize,
                                  "kernels": config.engine_kernels})
    if config.engine == "openai":
        return RemoteEngineLoader({"url": config.engine_url, "model": config.engine_model,
                                   "context": config.engine_context or None, "timeout_s": config.engine_timeout,
                                   "max_concurrency": config.engine_max_concurrency,
                                   "deadline_s": config.engine_deadline}, config.engine_api_key_file)
    return None
