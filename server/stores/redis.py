"""Scaled store: a Redis stream per document as the update log, a hash as its snapshot.

The log doubles as the fan-out channel between server replicas (see
`server.fanout.RedisFanout`): an instance that restarts, or whose connection
dropped, resumes reading a stream where it left off, so nothing is missed the
way a pub/sub message can be.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from .base import StoredDoc

FIELD_INSTANCE = b"i"
FIELD_UPDATE = b"u"
EMPTY_CURSOR = "0-0"
LOG_KEEP_MS = 60_000  # how long a compacted entry stays for instances still reading the log

# Replaces the snapshot only with a newer one, and trims the log up to it in the
# same atomic step: a reader sees either the old snapshot and the full log, or
# the new snapshot and the rest. Entries younger than ARGV[3] ms stay: the log is
# also the fan-out, and trimming at the compacting instance's own position cut
# entries another instance had not read yet (it never saw them; a load skips them,
# the snapshot holds them).
_REPLACE_SNAPSHOT = """
local function parse(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end
local ms, seq = parse(ARGV[2])
local current = redis.call('HGET', KEYS[1], 'id')
if current then
  local cms, cseq = parse(current)
  if cms > ms or (cms == ms and cseq >= seq) then return 0 end
end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'id', ARGV[2])
local now = redis.call('TIME')
local horizon = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
if horizon <= ms then
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', horizon))
else
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-%d', ms, seq + 1))
end
return 1
"""


def stream_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisStore:
    kind = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, instance_id: str):
        self.client = client
        self.prefix = prefix
        self.instance_id = instance_id.encode()
        self._replace = client.register_script(_REPLACE_SNAPSHOT)

    def log_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:log"

    def snapshot_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:snapshot"

    async def start(self) -> None:
        await self.client.ping()

    async def _read_all(self, doc: str) -> tuple[list[bytes], str]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.snapshot_key(doc))
            pipe.xrange(self.log_key(doc), "-", "+")
            snapshot, entries = await pipe.execute()
        updates, cursor = [], EMPTY_CURSOR
        if snapshot:
            updates.append(snapshot[b"data"])
            cursor = snapshot[b"id"].decode()
        for entry_id, fields in entries:
            if stream_id(entry_id) > stream_id(cursor):
                updates.append(fields[FIELD_UPDATE])
                cursor = entry_id.decode()
        return updates, cursor

    async def load(self, doc: str) -> StoredDoc:
        updates, cursor = await self._read_all(doc)
        return StoredDoc(updates, cursor, sum(len(u) for u in updates))

    async def append(self, doc: str, updates: list[bytes]) -> str:
        async with self.client.pipeline(transaction=True) as pipe:
            for update in updates:
                pipe.xadd(self.log_key(doc), {FIELD_INSTANCE: self.instance_id, FIELD_UPDATE: update})
            ids = await pipe.execute()
        return ids[-1].decode()

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        await self._replace(keys=[self.snapshot_key(doc), self.log_key(doc)], args=[snapshot, upto, LOG_KEEP_MS])

    async def check(self) -> dict:
        await self.client.ping()
        return {"kind": self.kind}

    async def close(self) -> None:
        await self.client.aclose()
