"""What an update would cost a document, decided before it is applied (issue 14).

- `growth_bytes`: at most what it adds to the document as compaction stores it, which the size
  limit is on; `extra_bytes` keeps the room's running bound honest after each integration.
- `first_missing`: whether it depends on changes the document lacks, which yrs would keep,
  out of reach and unbounded, in its pending store; `PendingUpdates` holds the byte budget for
  those the room lets wait. `integrates_whole`: the common case, where nothing is missing and yrs
  integrates the update as it is.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

from .updates import Block, DeleteIndex, ParsedUpdate

# What one split of an existing item can add to the document's encoding: a block header, an origin id of two
# 64-bit varuints at most, and a content length. Deleting every other character of a 30 KB text (12,000
# ranges, a 40 KB delete set) cut it into 24,000 items: its encoding grew from 30 KB to 233 KB (charged 664 KB).
SPLIT_BYTES = 24
# The counts of client runs and of delete-set clients at the head of the document's encoding, which grow too.
UPDATE_HEADER_BYTES = 2 * 10


def _uint_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _deletion_entry(client: int, clock: int, length: int) -> int:
    return _uint_bytes(client) + 1 + _uint_bytes(clock) + _uint_bytes(length)


def _block_overhead(block: Block) -> int:
    """What a block can cost beyond its own bytes once in the document: the header of a run of its client
    (client, clock, count), a delete-set entry when it arrives dead (a document's encoding lists GC ranges and
    deleted content among its deletions: a GC-only client costs it 15 bytes where the update spent 8), and a
    cut of an existing item at each origin."""
    header = _uint_bytes(block.client) + _uint_bytes(block.clock) + 1
    entry = _deletion_entry(block.client, block.clock, block.length) if block.is_dead else 0
    return header + entry + SPLIT_BYTES * (len(block.needs) - (block.clock > 0))


def _new_deletions(parsed: ParsedUpdate, deleted: DeleteIndex):
    for (client, start, length), num_bytes in zip(parsed.deletions, parsed.deletion_bytes):
        if length > 0 and not deleted.covers(client, start, start + length):
            yield client, start, length, num_bytes


def growth_bytes(parsed: ParsedUpdate, clocks: dict[int, int], deleted: DeleteIndex) -> int:
    """At most what the update can add to the document's encoding (what a compaction stores): its blocks the
    document lacks, items and GC ranges alike, and its deletions of what is not deleted yet, each with what it
    can cost beyond its own bytes (a deletion cuts up to two items). Counting only news lets a reconnecting
    client's sync step 2 (the server's document plus its own edits, and its whole delete set) in."""
    size = sum(
        block.num_bytes + _block_overhead(block)
        for block in parsed.blocks
        if block.clock + block.length > clocks.get(block.client, 0)
    )
    if size:
        size += UPDATE_HEADER_BYTES
    for client, start, length, num_bytes in _new_deletions(parsed, deleted):
        size += num_bytes + _uint_bytes(client) + 1 + 2 * SPLIT_BYTES
    return size


def extra_bytes(parsed: ParsedUpdate) -> int:
    """The most an integrated update can add to the document's encoding beyond its own bytes."""
    blocks = sum(_block_overhead(block) for block in parsed.blocks)
    return blocks + sum(_deletion_entry(*d) + 2 * SPLIT_BYTES for d in parsed.deletions)


def integrates_whole(parsed: ParsedUpdate, clocks: dict[int, int]) -> bool:
    """Whether the update inserts only what the document lacks, each client's structs following on from the
    document's clock for it, with everything they need already there. yrs then integrates all of it, and the
    update as sent does on any replica what yrs' own encoding of the integration would (which may differ in
    bytes: a run of one client's structs becomes one item). No deletions and nothing dead: there yrs drops
    what is already gone. A keystroke is such an update.

    The room then stores and broadcasts the update as sent without observing the transaction, which costs
    yrs twice what the apply does (issue 21). Pending updates yrs holds may come free with it: the caller
    checks that none are held."""
    if parsed.deletions or parsed.dead_structs or not parsed.blocks:
        return False
    next_clock: dict[int, int] = {}
    for block in parsed.blocks:
        client = block.client
        if block.clock != next_clock.get(client, clocks.get(client, 0)):
            return False  # a gap, a repeat, or what the document has
        for needed_client, needed_clock in block.needs:
            if needed_clock >= clocks.get(needed_client, 0) and not (
                needed_client == client and needed_clock < block.clock
            ):
                return False  # another client's struct in the same update, or nobody's: first_missing decides
        next_clock[client] = block.clock + block.length
    return True


def first_missing(parsed: ParsedUpdate, clocks: dict[int, int]) -> tuple[int, int] | None:
    """The first id (client, clock) the update needs that neither the document (`clocks`, its state
    vector) nor the update itself can provide; None when the whole update would be integrated.

    This replays yrs' integration order without touching the document: a block is integrated once its
    predecessor, origins and parent are known, which may need blocks of other clients later in the same
    update. Each client waits in a heap on the one id that blocks it, so a forged update with a dependency
    cycle costs O(n log n), not O(n^2), and ends unresolved as yrs' would (it would stay pending). Deciding
    before applying is what lets a refused update leave nothing behind: yrs keeps pending structs where no
    API reaches them, so the only undo after the fact would be rebuilding the document.
    """
    known: dict[int, int] = {}  # clients the update moves, over `clocks`
    queues: defaultdict[int, list[Block]] = defaultdict(list)
    for block in parsed.blocks:
        queues[block.client].append(block)
    for queue in queues.values():
        queue.sort(key=lambda b: b.clock)  # one run per client from Yjs; a forged update may split it
    position = dict.fromkeys(queues, 0)
    waiting: defaultdict[int, list[tuple[int, int]]] = defaultdict(list)  # client -> heap of (clock, waiter)
    ready = list(queues)

    def clock_of(client: int) -> int:
        return known.get(client, clocks.get(client, 0))

    while ready:
        client = ready.pop()
        queue, i = queues[client], position[client]
        while i < len(queue):
            block = queue[i]
            blocker = next(((c, k) for c, k in block.needs if k >= clock_of(c)), None)
            if blocker is not None:
                heapq.heappush(waiting[blocker[0]], (blocker[1], client))
                break
            known[client] = max(clock_of(client), block.clock + block.length)
            i += 1
        position[client] = i
        heap = waiting[client]
        while heap and heap[0][0] < clock_of(client):
            ready.append(heapq.heappop(heap)[1])
    for client, queue in queues.items():
        if position[client] < len(queue):
            return next((c, k) for c, k in queue[position[client]].needs if k >= clock_of(c))
    for client, start, length in parsed.deletions:
        if length > 0 and start + length > clock_of(client):
            return client, max(start, clock_of(client))
    return None


class PendingUpdates:
    """The accepted updates yrs holds pending, each filed under the id it waits for, with their bytes.

    Checking one only when the client of the id it waits for moves keeps the cost of an integration
    independent of how many wait: 1 MB of one-struct updates would otherwise be ~100k checks a keystroke."""

    def __init__(self) -> None:
        self.num_bytes = 0
        self._waiting: defaultdict[int, list] = defaultdict(list)  # client -> heap of (clock, seq, bytes, update)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(len(heap) for heap in self._waiting.values())

    def hold(self, num_bytes: int, parsed: ParsedUpdate, blocker: tuple[int, int]) -> None:
        self.num_bytes += num_bytes
        heapq.heappush(self._waiting[blocker[0]], (blocker[1], next(self._seq), num_bytes, parsed))

    def advance(self, moved: ParsedUpdate, clocks: dict[int, int]) -> None:
        """After the document integrated `moved`: lets go of the updates it completed."""
        for client in {block.client for block in moved.blocks}:
            heap = self._waiting.get(client)
            while heap and heap[0][0] < clocks.get(client, 0):
                _, seq, num_bytes, parsed = heapq.heappop(heap)
                blocker = first_missing(parsed, clocks)
                if blocker is None:
                    self.num_bytes -= num_bytes
                else:
                    heapq.heappush(self._waiting[blocker[0]], (blocker[1], seq, num_bytes, parsed))
            if heap is not None and not heap:
                del self._waiting[client]
