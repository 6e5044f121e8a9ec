"""Both stores: append, load, compaction into a snapshot, and what survives a reopen."""

from __future__ import annotations

import random

import pytest
import redis.asyncio as aioredis
from pycrdt import Doc, Text

from server.stores.redis import RedisStore
from server.stores.sqlite import SqliteStore


@pytest.fixture
def anyio_backend():
    return "asyncio"


def edits(seed: int, count: int) -> tuple[list[bytes], str]:
    """`count` incremental updates of one text, and the text they make."""
    rng = random.Random(seed)
    doc = Doc()
    text = doc.get("content", type=Text)
    updates = []
    for _ in range(count):
        before = doc.get_state()
        chars = str(text)
        if len(chars) > 5 and rng.random() < 0.3:
            start = rng.randrange(len(chars) - 3)
            del text[utf8_offset(chars, start) : utf8_offset(chars, start + 3)]
        else:
            text.insert(utf8_offset(chars, rng.randrange(len(chars) + 1)), rng.choice(["ab", "😀", "é ", "中文"]))
        updates.append(doc.get_update(before))
    return updates, str(text)


def utf8_offset(chars: str, index: int) -> int:
    """pycrdt 0.14 indexes text by UTF-8 byte, not by character."""
    return len(chars[:index].encode())


def replay(updates: list[bytes]) -> str:
    doc = Doc()
    text = doc.get("content", type=Text)
    for update in updates:
        doc.apply_update(update)
    return str(text)


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


@pytest.mark.anyio
async def test_append_load_and_reopen(make_store):
    updates, expected = edits(seed=1, count=60)
    store = await make_store()
    for i in range(0, 60, 7):
        await store.append("doc", updates[i : i + 7])
    loaded = await store.load("doc")
    assert replay(loaded.updates) == expected
    assert loaded.size_bytes == sum(len(u) for u in updates)
    assert (await store.load("another")).updates == []
    reopened = await make_store()
    assert replay((await reopened.load("doc")).updates) == expected


@pytest.mark.anyio
async def test_compaction_keeps_the_text_and_shrinks_the_log(make_store):
    updates, expected = edits(seed=2, count=300)
    store = await make_store()
    await store.append("doc", updates[:200])
    size = await store.compact("doc")
    loaded = await store.load("doc")
    assert len(loaded.updates) == 1 and len(loaded.updates[0]) == size
    assert size < sum(len(u) for u in updates[:200])
    # Appends after the snapshot land on top of it, and a second compaction folds them in.
    await store.append("doc", updates[200:])
    assert len((await store.load("doc")).updates) == 101
    assert replay((await store.load("doc")).updates) == expected
    await store.compact("doc")
    loaded = await store.load("doc")
    assert len(loaded.updates) == 1
    assert replay(loaded.updates) == expected


@pytest.mark.anyio
async def test_cursor_moves_with_appends(make_store):
    updates, _ = edits(seed=3, count=3)
    store = await make_store()
    first = await store.append("doc", updates[:1])
    second = await store.append("doc", updates[1:])
    assert (await store.load("doc")).cursor == second != first
