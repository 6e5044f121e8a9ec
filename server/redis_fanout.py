"""Fan-out between server replicas over Redis (server/fanout.py says the hygiene): document updates through
the store's own streams, awareness over pub/sub. Imported only when a Redis URL is configured."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from .fanout import Listener
from .stores.redis import FIELD_INSTANCE, FIELD_UPDATE, RedisStore

log = logging.getLogger(__name__)

# Awareness messages on pub/sub: sender instance id, NUL, kind, payload.
_AWARENESS_UPDATE = b"u"
_AWARENESS_QUERY = b"q"


@dataclass
class _Subscription:
    doc: str
    cursor: str
    listener: Listener


class RedisFanout:
    RETRY_S = 0.5

    def __init__(self, redis_url: str, store: RedisStore, instance_id: str):
        # Blocking reads hold their connection: a client of their own, apart from the store's.
        # No socket timeout: redis-py's default (5 s) timed out every idle 10 s XREAD, and
        # with a timeout it sends each command through asyncio.wait_for, which on Python
        # 3.11 swallows a cancel landing as the send completes, so close() hung for good.
        self.reader = aioredis.from_url(redis_url, socket_timeout=None)
        self.store = store
        self.prefix = store.prefix
        self.instance_id = instance_id.encode()
        self.subscriptions: dict[bytes, _Subscription] = {}  # by log key
        self.wake_key = f"{self.prefix}:instance:{instance_id}:wake"
        self.wake_cursor = "0-0"
        self._tasks: list[asyncio.Task] = []
        self._publishing: set[asyncio.Task] = set()  # awareness on its way to pub/sub
        self._pubsub = None

    def _awareness_channel(self, doc: str) -> str:
        return f"{self.prefix}:awareness:{doc}"

    async def start(self) -> None:
        self.wake_cursor = (await self.store.client.xadd(self.wake_key, {"w": 1}, maxlen=16)).decode()
        await self.store.client.expire(self.wake_key, 24 * 3600)
        self._pubsub = self.reader.pubsub()
        await self._pubsub.psubscribe(f"{self.prefix}:awareness:*")
        self._tasks = [
            asyncio.create_task(self._read_logs(), name="fanout-logs"),
            asyncio.create_task(self._read_awareness(), name="fanout-awareness"),
        ]

    async def _wake(self) -> None:
        """Interrupts the blocking XREAD so it picks up the new set of streams."""
        await self.store.client.xadd(self.wake_key, {"w": 1}, maxlen=16)

    async def subscribe(self, doc: str, cursor: str, listener: Listener) -> None:
        key = self.store.log_key(doc).encode()
        self.subscriptions[key] = _Subscription(doc, cursor, listener)
        await self._wake()

    async def unsubscribe(self, doc: str) -> None:
        self.subscriptions.pop(self.store.log_key(doc).encode(), None)
        await self._wake()

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(doc, _AWARENESS_UPDATE + payload))
        self._publishing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("publishing awareness failed (presence elsewhere catches up at the next): %s", task.exception())

    async def query_awareness(self, doc: str) -> None:
        await self._publish(doc, _AWARENESS_QUERY)

    def covered(self, doc: str, appended: str) -> str:
        # Others' entries below our own last append may not be read yet; the reader's
        # position is where everything (ours included) has been applied.
        return self.subscriptions[self.store.log_key(doc).encode()].cursor

    async def _publish(self, doc: str, message: bytes) -> None:
        await self.store.client.publish(self._awareness_channel(doc), self.instance_id + b"\0" + message)

    async def _read_logs(self) -> None:
        wake_key = self.wake_key.encode()
        while True:
            streams = {wake_key: self.wake_cursor}
            streams.update({key: sub.cursor for key, sub in self.subscriptions.items()})
            try:
                response = await self.reader.xread(streams, block=10_000)
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("fan-out read failed, retrying: %s", exc)
                await asyncio.sleep(self.RETRY_S)
                continue
            for key, entries in response or []:
                if key == wake_key:
                    self.wake_cursor = entries[-1][0].decode()
                    continue
                sub = self.subscriptions.get(key)
                if sub is None:
                    continue
                for entry_id, fields in entries:
                    sub.cursor = entry_id.decode()
                    if fields.get(FIELD_INSTANCE) != self.instance_id:
                        self._deliver(sub, fields[FIELD_UPDATE])

    @staticmethod
    def _deliver(sub: _Subscription, update: bytes) -> None:
        try:
            sub.listener.on_remote_update(update)
        except Exception:  # one bad room must not stop fan-out for the others
            log.exception("applying a remote update to %s failed", sub.doc)

    async def _read_awareness(self) -> None:
        prefix_len = len(self.prefix) + len(":awareness:")
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=10.0)
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("awareness fan-out failed, retrying: %s", exc)
                await asyncio.sleep(self.RETRY_S)
                continue
            if message is None:
                continue
            doc = message["channel"].decode()[prefix_len:]
            sender, _, body = message["data"].partition(b"\0")
            sub = self.subscriptions.get(self.store.log_key(doc).encode())
            if sub is None or sender == self.instance_id:
                continue
            kind, payload = body[:1], body[1:]
            try:
                if kind == _AWARENESS_UPDATE:
                    sub.listener.on_remote_awareness(payload, sender.decode(errors="replace"))
                elif kind == _AWARENESS_QUERY:
                    sub.listener.on_awareness_query()
            except Exception:
                log.exception("handling remote awareness for %s failed", doc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._publishing, return_exceptions=True)  # the last presence goes out
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self.reader.aclose()
