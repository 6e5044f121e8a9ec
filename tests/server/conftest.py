"""Fixtures of the server suites."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from server.stores.redis import RedisStore
from server.stores.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "redis"])
async def make_store(request, tmp_path):
    """Opens (and reopens) a store of each kind on the same backing data."""
    opened = []
    if request.param == "redis":
        redis_server = request.getfixturevalue("redis_server")

    async def make():
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "store.sqlite3")
        else:
            store = RedisStore(aioredis.from_url(redis_server.url), "test", f"instance-{len(opened)}")
        await store.start()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
