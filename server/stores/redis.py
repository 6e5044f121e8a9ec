"""Scaled store: a Redis stream per document as the update log, a hash as its snapshot.

The log doubles as the fan-out channel between server replicas (see
`server.redis_fanout.RedisFanout`): an instance that restarts, or whose connection
dropped, resumes reading a stream where it left off, so nothing is missed the
way a pub/sub message can be.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import redis.asyncio as aioredis

from ..history.entry import HistoryEntry
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


# History, per document: a sorted set of metadata scored by seq (members "{seq}:{meta JSON}": the seq makes
# them unique), a hash of updates by seq, and a hash of counters ("seq": the last one given, "bytes": what the
# entries take). Metadata apart from updates lets a version list read no update bytes at all. Checkpoints are a
# hash seq -> state. Compaction's script never touches any of them.
#
# The log entries and the history entries of one append go in one script: Redis runs it whole or not at all,
# so an update that was acknowledged (broadcast after `append` returns) always has its history entry.
# KEYS: log, history, updates, counters. ARGV from first_arg on: meta, update, meta, update, ...
_RECORD = """
local function record(first_arg)
  local m = (#ARGV - first_arg + 1) / 2
  if m < 1 then return end
  local seq = redis.call('HINCRBY', KEYS[4], 'seq', m) - m
  local bytes = 0
  for j = 1, m do
    local meta, update = ARGV[first_arg + 2 * j - 2], ARGV[first_arg + 2 * j - 1]
    local s = string.format('%d', seq + j)
    redis.call('ZADD', KEYS[2], s, s .. ':' .. meta)
    redis.call('HSET', KEYS[3], s, update)
    bytes = bytes + #meta + #update + 8
  end
  redis.call('HINCRBY', KEYS[4], 'bytes', bytes)
end
"""
_APPEND = _RECORD + """
local n = tonumber(ARGV[2])
local id = false
for i = 1, n do
  id = redis.call('XADD', KEYS[1], '*', 'i', ARGV[1], 'u', ARGV[2 + i])
end
record(3 + n)
return id
"""
_ADD_BASELINE = _RECORD + """
if redis.call('HEXISTS', KEYS[4], 'seq') == 1 then return 0 end
record(1)
return 1
"""
# KEYS: history, updates, counters, checkpoints. ARGV: merged seq, meta, update, k, the k folded seqs, the
# SHA-1 of each one's update as it was read, then the checkpoints to drop. Folds only if the history from
# the first to the last seq still holds exactly those entries (see Store.fold_history); returns 0 if not.
_FOLD = """
local k = tonumber(ARGV[4])
local held = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[5], ARGV[4 + k])
if #held ~= k then return 0 end
for i = 1, k do
  local s = ARGV[4 + i]
  if string.match(held[i], '^(%d+):') ~= s then return 0 end
  if redis.sha1hex(redis.call('HGET', KEYS[2], s) or '') ~= ARGV[4 + k + i] then return 0 end
end
local removed = 0
for i = 1, k do
  local s = ARGV[4 + i]
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], s, s)) do
    removed = removed + #member - #s - 1 + redis.call('HSTRLEN', KEYS[2], s) + 8
    redis.call('ZREM', KEYS[1], member)
  end
  redis.call('HDEL', KEYS[2], s)
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'bytes', #ARGV[2] + #ARGV[3] + 8 - removed)
for i = 5 + 2 * k, #ARGV do
  redis.call('HDEL', KEYS[4], ARGV[i])
end
return 1
"""
# Entries with their updates, read in one step so that a fold cannot remove an update between the two reads.
# KEYS: history, updates. ARGV: low, high (ZRANGEBYSCORE syntax), limit (-1: all), "rev" or "".
_READ = """
local members
if ARGV[4] == 'rev' then
  members = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, ARGV[3])
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
end
local out = {}
for _, member in ipairs(members) do
  local s = string.match(member, '^(%d+):')
  out[#out + 1] = member
  out[#out + 1] = redis.call('HGET', KEYS[2], s) or ''
end
return out
"""
# The newest checkpoint at or before ARGV[1], read in one step so a fold cannot drop it in between.
_CHECKPOINT = """
local best = -1
for _, s in ipairs(redis.call('HKEYS', KEYS[1])) do
  local n = tonumber(s)
  if n <= tonumber(ARGV[1]) and n > best then best = n end
end
if best < 0 then return false end
local key = string.format('%d', best)
return {key, redis.call('HGET', KEYS[1], key)}
"""


def _record_args(entries) -> list:
    return [part for entry in entries for part in (entry.to_meta().encode(), entry.update)]


def _unpack(member: bytes, update: bytes = b"") -> HistoryEntry:
    seq, _, meta = member.partition(b":")
    return HistoryEntry.from_meta(int(seq), update, meta)


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
        self._append = client.register_script(_APPEND)
        self._add_baseline = client.register_script(_ADD_BASELINE)
        self._fold = client.register_script(_FOLD)
        self._checkpoint = client.register_script(_CHECKPOINT)
        self._read_history = client.register_script(_READ)

    def log_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:log"

    def snapshot_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:snapshot"

    def history_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:history"

    def history_updates_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:history:updates"

    def history_counters_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:history:counters"

    def checkpoints_key(self, doc: str) -> str:
        return f"{self.prefix}:doc:{doc}:checkpoints"

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

    async def append(self, doc: str, updates: list[bytes], history: Sequence[HistoryEntry] = ()) -> str:
        if history:
            keys = [self.log_key(doc), *self._history_keys(doc)]
            args = [self.instance_id, len(updates), *updates, *_record_args(history)]
            return (await self._append(keys=keys, args=args)).decode()
        async with self.client.pipeline(transaction=True) as pipe:
            for update in updates:
                pipe.xadd(self.log_key(doc), {FIELD_INSTANCE: self.instance_id, FIELD_UPDATE: update})
            ids = await pipe.execute()
        return ids[-1].decode()

    async def compact(self, doc: str, snapshot: bytes, upto: str) -> None:
        await self._replace(keys=[self.snapshot_key(doc), self.log_key(doc)], args=[snapshot, upto, LOG_KEEP_MS])

    # --- history ------------------------------------------------------------------------

    def _history_keys(self, doc: str) -> list[str]:
        return [self.history_key(doc), self.history_updates_key(doc), self.history_counters_key(doc)]

    async def history(
        self,
        doc: str,
        after: int = 0,
        upto: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_updates: bool = True,
    ) -> list[HistoryEntry]:
        low, high = f"({after}", "+inf" if upto is None else str(upto)
        if not with_updates:
            paging = {"start": 0, "num": limit} if limit is not None else {}
            if newest_first:
                members = await self.client.zrevrangebyscore(self.history_key(doc), high, low, **paging)
            else:
                members = await self.client.zrangebyscore(self.history_key(doc), low, high, **paging)
            return [_unpack(member) for member in members]
        keys = [self.history_key(doc), self.history_updates_key(doc)]
        args = [low, high, -1 if limit is None else limit, "rev" if newest_first else ""]
        flat = await self._read_history(keys=keys, args=args)
        return [_unpack(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    async def history_updates(self, doc: str, after: int = 0) -> list[tuple[int, bytes]]:
        keys = [self.history_key(doc), self.history_updates_key(doc)]
        flat = await self._read_history(keys=keys, args=[f"({after}", "+inf", -1, ""])
        return [(int(flat[i].partition(b":")[0]), flat[i + 1]) for i in range(0, len(flat), 2)]

    async def add_baseline(self, doc: str, entry: HistoryEntry) -> bool:
        keys = ["", *self._history_keys(doc)]
        return bool(await self._add_baseline(keys=keys, args=_record_args([entry])))

    async def checkpoint(self, doc: str, at_or_before: int) -> tuple[int, bytes] | None:
        found = await self._checkpoint(keys=[self.checkpoints_key(doc)], args=[at_or_before])
        return (int(found[0]), found[1]) if found else None

    async def put_checkpoint(self, doc: str, seq: int, state: bytes) -> None:
        await self.client.hset(self.checkpoints_key(doc), str(seq), state)

    async def fold_history(
        self, doc: str, run: list[HistoryEntry], merged: HistoryEntry, drop_checkpoints: list[int]
    ) -> bool:
        seqs = [entry.seq for entry in run]
        assert merged.seq == max(seqs), "a merged entry takes the seq of the last entry it folds"
        keys = [*self._history_keys(doc), self.checkpoints_key(doc)]
        digests = [hashlib.sha1(entry.update).hexdigest() for entry in run]
        args = [merged.seq, merged.to_meta().encode(), merged.update, len(seqs), *seqs, *digests, *drop_checkpoints]
        return bool(await self._fold(keys=keys, args=args))

    async def history_bytes(self, doc: str) -> int:
        entries = int(await self.client.hget(self.history_counters_key(doc), "bytes") or 0)
        seqs = await self.client.hkeys(self.checkpoints_key(doc))
        if not seqs:
            return entries
        async with self.client.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.hstrlen(self.checkpoints_key(doc), seq)
            sizes = await pipe.execute()
        return entries + sum(sizes) + 8 * len(seqs)

    async def check(self) -> dict:
        await self.client.ping()
        return {"kind": self.kind}

    async def close(self) -> None:
        await self.client.aclose()
