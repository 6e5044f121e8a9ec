"""Where each redraft lives, so that any server replica can answer for it.

A redraft stays in the process that took its request: its engine job, its fork and its undo manager
cannot move. Behind a load balancer the GET, accept, undo or DELETE that follows may reach another
replica, so with Redis (`--redis-url`) the owner publishes each redraft's JSON view under
`{prefix}:redraft:{id}` whenever its status changes (kept an hour), and listens on its own channel
`{prefix}:redraft:commands:{instance}`. Another replica answers GET from the view and forwards the
others to the owner, then waits for the answer on a one-off list (`BLPOP`): the owner runs the action
exactly as if the request had reached it.

A document's history is a sorted set `{prefix}:redrafts:{doc}` of redraft ids by creation time (newest
HISTORY_KEEP kept, an hour after its last redraft): any replica lists it and reads the views. A view is
republished whenever what it says changes (status, undo and redo availability, `rejected_by`...), so another
replica's list is as fresh as the owner's last publish.

An owner that has stopped has no subscriber: the command fails at once with 503 and the reason, and the
redraft's last view (already in the document or not) stays readable, and listed, for KEEP_S. What survives
a restart of every replica: the views still in Redis (read-only); undo and redo need the owner's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from .record import Redraft

log = logging.getLogger(__name__)

KEEP_S = 3600  # how long a redraft's view stays readable from other replicas
OWNER_GONE = "the server that ran this redraft has stopped, so it can no longer be undone or redone"
HISTORY_KEEP = 500  # redraft ids kept per document in its history set
# What, when it changes, makes a view worth republishing (the step counter alone is not).
SIGNATURE = ("status", "can_undo", "can_redo", "undo_blocked", "rejected_by", "passage_edited", "text", "error")
ANSWER_TIMEOUT_S = 10.0  # an owner that is alive answers within milliseconds; an accept merges at most 8000 chars
RETRY_S = 0.5

# (doc, redraft id, action, who acts) -> (HTTP status, JSON body): RedraftService.run_command on the owner.
CommandHandler = Callable[[str, str, str, dict | None], Awaitable[tuple[int, dict]]]


class OwnerUnreachable(Exception):
    """The replica holding a redraft did not take a forwarded command (stopped, or too slow)."""


class Directory(Protocol):
    is_shared: bool  # other replicas read what this one records

    async def start(self, handler: CommandHandler) -> None: ...

    def record(self, redraft: Redraft, view: dict) -> None:
        """Publishes the redraft's view (its JSON resource) if what it says changed since the last one."""
        ...

    async def lookup(self, redraft_id: str) -> dict | None:
        """{"owner", "doc", "view"} of a redraft another replica holds, or None."""
        ...

    async def history(self, doc: str, limit: int, before: float | None) -> list[dict]:
        """Views of the document's redrafts on every replica, newest first (this one's included)."""
        ...

    async def forward(self, owner: str, doc: str, redraft_id: str, action: str, by: dict | None = None) -> tuple[int, dict]: ...

    async def close(self) -> None: ...


class LocalDirectory:
    """One server process: every redraft is here."""

    is_shared = False

    async def start(self, handler: CommandHandler) -> None:
        pass

    def record(self, redraft: Redraft, view: dict) -> None:
        pass

    async def lookup(self, redraft_id: str) -> dict | None:
        return None

    async def history(self, doc: str, limit: int, before: float | None) -> list[dict]:
        return []

    async def forward(self, owner: str, doc: str, redraft_id: str, action: str, by: dict | None = None) -> tuple[int, dict]:
        raise OwnerUnreachable("no other server replica")

    async def close(self) -> None:
        pass


class RedisDirectory:
    is_shared = True  # other replicas read the views: republish what changes

    def __init__(self, redis_url: str, prefix: str, instance_id: str, answer_timeout_s: float = ANSWER_TIMEOUT_S):
        import redis.asyncio as aioredis  # here: a server without --redis-url never loads redis

        # Blocking reads (BLPOP, the subscription) hold their connection: no socket timeout, as in fanout.py.
        self.client = aioredis.from_url(redis_url, socket_timeout=None)
        self.prefix = prefix
        self.instance_id = instance_id
        self.answer_timeout_s = answer_timeout_s
        self._published: dict[str, tuple] = {}  # id -> signature last published
        self._pending: dict[str, tuple[str, float, str]] = {}  # id -> (doc, created, view JSON) not yet written
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._handlers: set[asyncio.Task] = set()
        self._pubsub = None

    def _key(self, redraft_id: str) -> str:
        return f"{self.prefix}:redraft:{redraft_id}"

    def _channel(self, instance_id: str) -> str:
        return f"{self.prefix}:redraft:commands:{instance_id}"

    async def start(self, handler: CommandHandler) -> None:
        self._handler = handler
        self._pubsub = self.client.pubsub()
        await self._pubsub.subscribe(self._channel(self.instance_id))
        self._tasks = [
            asyncio.create_task(self._write_views(), name="redraft-directory-writer"),
            asyncio.create_task(self._take_commands(), name="redraft-directory-commands"),
        ]

    def _history_key(self, doc: str) -> str:
        return f"{self.prefix}:redrafts:{doc}"

    def record(self, redraft: Redraft, view: dict) -> None:
        signature = tuple(json.dumps(view.get(name), sort_keys=True) for name in SIGNATURE)
        if self._published.get(redraft.id) == signature:
            return  # steps change every few ms; other replicas need the status, text, undo and timings
        self._published[redraft.id] = signature
        entry = {"owner": self.instance_id, "doc": redraft.doc, "view": view}
        self._pending[redraft.id] = (redraft.doc, redraft.created, json.dumps(entry))
        self._wake.set()

    async def _write_views(self) -> None:
        """One writer, so that a redraft's views land in the order of its statuses."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for redraft_id, (doc, created, entry) in pending.items():
                        pipe.set(self._key(redraft_id), entry, ex=KEEP_S)
                        history = self._history_key(doc)
                        pipe.zadd(history, {redraft_id: created})
                        pipe.zremrangebyrank(history, 0, -HISTORY_KEEP - 1)
                        pipe.expire(history, KEEP_S)
                    await pipe.execute()
            except Exception as exc:  # Redis away: keep the newest views for the next try
                log.warning("publishing redraft views failed, retrying: %s", exc)
                self._pending = {**pending, **self._pending}
                self._wake.set()
                await asyncio.sleep(RETRY_S)
            if len(self._published) > 4096:  # statuses of long-finished redrafts: only a re-publish would miss
                self._published = dict(list(self._published.items())[-1024:])

    async def lookup(self, redraft_id: str) -> dict | None:
        raw = await self.client.get(self._key(redraft_id))
        if not raw:
            return None
        entry = json.loads(raw)
        return (await self._as_of_now([entry]))[0]

    async def history(self, doc: str, limit: int, before: float | None) -> list[dict]:
        top = f"({before}" if before is not None else "+inf"
        ids = await self.client.zrevrangebyscore(self._history_key(doc), top, "-inf", start=0, num=limit)
        if not ids:
            return []
        entries = [json.loads(raw) for raw in await self.client.mget([self._key(i.decode()) for i in ids]) if raw]
        entries = [entry for entry in entries if entry.get("doc") == doc]  # (a view outlived by its id: expired)
        return [entry["view"] for entry in await self._as_of_now(entries)]

    async def _as_of_now(self, entries: list[dict]) -> list[dict]:
        """The entries with the views of stopped owners' redrafts saying they can no longer be undone."""
        owners = sorted({entry["owner"] for entry in entries} - {self.instance_id})
        listening = dict(await self.client.pubsub_numsub(*[self._channel(o) for o in owners])) if owners else {}
        for entry in entries:
            view = entry["view"]
            if entry["owner"] != self.instance_id and not listening.get(self._channel(entry["owner"]).encode()):
                if view.get("status") in ("done", "undone"):  # its owner has stopped: undo went with it
                    entry["view"] = {**view, "can_undo": False, "can_redo": False, "undo_blocked": OWNER_GONE}
        return entries

    async def forward(self, owner: str, doc: str, redraft_id: str, action: str, by: dict | None = None) -> tuple[int, dict]:
        reply = f"{self.prefix}:redraft:reply:{uuid.uuid4().hex}"
        message = json.dumps({"doc": doc, "id": redraft_id, "action": action, "by": by, "reply": reply})
        if not await self.client.publish(self._channel(owner), message):
            raise OwnerUnreachable("the server that ran this redraft has stopped")  # (OWNER_GONE's first words)
        answer = await self.client.blpop([reply], timeout=self.answer_timeout_s)
        if answer is None:
            raise OwnerUnreachable(f"the server that ran this redraft did not answer within {self.answer_timeout_s:g} s")
        body = json.loads(answer[1])
        return body["status"], body["body"]

    async def _take_commands(self) -> None:
        import redis.asyncio as aioredis

        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=10.0)
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("redraft command channel failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            if message is not None:
                task = asyncio.create_task(self._answer(message["data"]))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    async def _answer(self, data: bytes) -> None:
        try:
            command = json.loads(data)
            reply = command["reply"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed redraft command: %r", data[:200])
            return
        try:
            status, body = await self._handler(
                str(command.get("doc")), str(command.get("id")), str(command.get("action")), command.get("by")
            )
        except Exception as exc:  # a bug: the asker still gets an answer, not a timeout
            log.exception("a forwarded redraft command failed")
            status, body = 500, {"error": "internal", "detail": f"internal error: {exc}"}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(reply, json.dumps({"status": status, "body": body}))
            pipe.expire(reply, 60)  # nobody waits past the asker's timeout
            await pipe.execute()

    async def close(self) -> None:
        for task in [*self._tasks, *self._handlers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self.client.aclose()
