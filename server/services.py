"""What one server process runs on: store, fan-out, rooms and metrics, built from the config."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

from .config import ServerConfig
from .fanout import Fanout, NullFanout
from .history.recorder import HistoryPolicy
from .metrics import Metrics
from .redrafts.backends import EngineBackend, EngineLoader, LocalBackend, OffBackend, OpenAIBackend
from .redrafts.directory import Directory, LocalDirectory
from .redrafts.service import RedraftService
from .rooms import RoomManager
from .stores.base import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: ServerConfig
    instance_id: str
    store: Store
    fanout: Fanout
    rooms: RoomManager
    metrics: Metrics
    redrafts: RedraftService
    connections_by_address: Counter = field(default_factory=Counter)

    @classmethod
    def build(cls, config: ServerConfig, engine_loader: EngineLoader | None = None) -> "Services":
        """`engine_loader`: how `--engine local` or `openai` gets its engine (redraft/engines.py)."""
        instance_id = config.instance_id or uuid.uuid4().hex[:12]
        metrics = Metrics()
        if config.redis_url:
            import redis.asyncio as aioredis

            from .redis_fanout import RedisFanout
            from .stores.redis import RedisStore

            store: Store = RedisStore(aioredis.from_url(config.redis_url), config.redis_prefix, instance_id)
            fanout: Fanout = RedisFanout(config.redis_url, store, instance_id)
        else:
            from .stores.sqlite import SqliteStore

            store = SqliteStore(config.data_dir / "redraft.sqlite3")
            fanout = NullFanout()
        rooms = RoomManager(
            store,
            fanout,
            metrics,
            max_doc_bytes=config.max_doc_bytes,
            compact_min_bytes=config.compact_min_bytes,
            grace_s=config.room_grace_s,
            max_pending_bytes=config.max_pending_bytes,
            max_unstored_bytes=config.max_unstored_bytes,
            max_awareness_bytes=config.max_awareness_bytes,
            history=HistoryPolicy.from_config(config, instance_id),
        )
        redrafts = RedraftService(config, rooms, _engine_backend(config, engine_loader), metrics, _directory(config, instance_id))
        return cls(config, instance_id, store, fanout, rooms, metrics, redrafts)

    async def start(self) -> None:
        await self.store.start()
        await self.fanout.start()
        await self.redrafts.start()
        log.info(
            "instance %s serving with the %s store, engine %s",
            self.instance_id,
            self.store.kind,
            self.config.engine,
        )

    async def close(self) -> None:
        await self.redrafts.close()
        await self.rooms.close()
        await self.fanout.close()
        await self.store.close()


def _directory(config: ServerConfig, instance_id: str) -> Directory:
    if config.redis_url:
        from .redrafts.directory import RedisDirectory

        return RedisDirectory(config.redis_url, config.redis_prefix, instance_id)
    return LocalDirectory()


def _engine_backend(config: ServerConfig, engine_loader: EngineLoader | None) -> EngineBackend:
    if config.engine in ("local", "openai") and engine_loader is None:
        raise ValueError(f"--engine {config.engine} needs an engine loader (redraft/engines.py composes one)")
    if config.engine == "local":
        return LocalBackend(config.model, engine_loader)
    if config.engine == "openai":
        return OpenAIBackend(config.engine_model, engine_loader)
    if config.engine == "redis":
        from .redrafts.redis_backend import RedisBackend

        return RedisBackend(config.redis_url, config.redis_prefix)
    return OffBackend()
