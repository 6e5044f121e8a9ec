"""Reading Yjs v1 updates without applying them, to vet them before they reach the document.

Two checks need to see inside an update:
- A stock Yjs client can insert or delete between the two halves of a UTF-16
  surrogate pair (an emoji). Yjs then turns both halves into U+FFFD in its own
  copy, while the server's yrs copy splits the character differently: the replicas
  silently diverge. Such an update is refused; `SurrogateIndex` knows where the
  pairs are.
- A read-only client's sync step 2 is allowed when it brings nothing new;
  `DeleteIndex` knows which deletions the server already has.
- Budgets: `news_bytes` is what an update would add to the stored document, and
  `first_missing` finds an update that depends on changes the document does not
  have (yrs would keep it, unbounded, in its pending store).

The layout follows Yjs' `UpdateDecoderV1` (yjs/src/utils/encoding.js).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from .protocol import ProtocolError, Reader

_BIT8, _BIT7, _BIT6 = 0x80, 0x40, 0x20
_CONTENT_GC, _CONTENT_DELETED, _CONTENT_STRING, _CONTENT_SKIP = 0, 1, 4, 10
_TYPE_XML_ELEMENT, _TYPE_XML_HOOK = 3, 5


class Struct(NamedTuple):
    """One item: its id and length (clock units: UTF-16 units for text), text for string content, and
    where it was inserted: its neighbours' ids, and its parent when it has no neighbour to inherit it from
    (a root type's name, or a nested type's item id)."""

    client: int
    clock: int
    length: int
    text: str | None
    origin: tuple[int, int] | None = None
    right_origin: tuple[int, int] | None = None
    parent: str | tuple[int, int] | None = None


class Block(NamedTuple):
    """One struct that takes clocks in the document (an item or a GC range; not a skip), what it needs to
    be there before it can be integrated, and its size in the encoding."""

    client: int
    clock: int
    length: int
    num_bytes: int
    needs: tuple[tuple[int, int], ...]  # ids (client, clock): its predecessor, origins and parent item
    is_dead: bool  # a GC range or deleted content: the document lists it among its deletions too


@dataclass
class ParsedUpdate:
    structs: list[Struct] = field(default_factory=list)  # every item (not GC or skip)
    blocks: list[Block] = field(default_factory=list)  # every item and GC range, in the encoding's order
    # (client, clock) boundaries the update splits existing items at
    split_points: list[tuple[int, int]] = field(default_factory=list)
    # (client, clock, length) ranges the delete set removes
    deletions: list[tuple[int, int, int]] = field(default_factory=list)
    deletion_bytes: list[int] = field(default_factory=list)  # each range's size in the encoding
    # (client, clock, length) structs that arrive already deleted (GC, ContentDeleted)
    dead_structs: list[tuple[int, int, int]] = field(default_factory=list)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_update(update: bytes, strict: bool = True) -> ParsedUpdate:
    """Parses a v1 update, raising ProtocolError when it is not one.

    strict=False accepts (and leaves out) empty string items, for reading the server's own documents: yrs
    writes them when an edit by byte offset splits a character (Yjs reads them as zero-length items). From
    a client one is refused."""
    reader = Reader(update)
    parsed = ParsedUpdate()
    try:
        for _ in range(reader.read_uint()):
            num_structs = reader.read_uint()
            client = reader.read_uint()
            clock = reader.read_uint()
            for _ in range(num_structs):
                clock += _read_struct(reader, client, clock, parsed, strict)
        for _ in range(reader.read_uint()):
            client = reader.read_uint()
            for _ in range(reader.read_uint()):
                pos = reader.pos
                start = reader.read_uint()
                length = reader.read_uint()
                parsed.deletions.append((client, start, length))
                parsed.deletion_bytes.append(reader.pos - pos)
                parsed.split_points += [(client, start), (client, start + length)]
    except RecursionError as exc:
        raise ProtocolError("update nests too deeply") from exc
    if not reader.is_done:
        raise ProtocolError("trailing bytes after the update")
    return parsed


def _read_struct(reader: Reader, client: int, clock: int, parsed: ParsedUpdate, strict: bool) -> int:
    start = reader.pos
    info = reader.read_byte()
    content_ref = info & 0x1F
    if content_ref == _CONTENT_SKIP:
        return reader.read_uint()
    predecessor = ((client, clock - 1),) if clock > 0 else ()
    if content_ref == _CONTENT_GC:
        length = reader.read_uint()
        parsed.dead_structs.append((client, clock, length))
        if length > 0:
            parsed.blocks.append(Block(client, clock, length, reader.pos - start, predecessor, True))
        return length
    origin = right_origin = parent = None
    if info & _BIT8:
        origin = (reader.read_uint(), reader.read_uint())
        # Inserting after (c, k) splits c's item between k and k + 1.
        parsed.split_points.append((origin[0], origin[1] + 1))
    if info & _BIT7:
        right_origin = (reader.read_uint(), reader.read_uint())
        parsed.split_points.append(right_origin)
    if info & (_BIT8 | _BIT7) == 0:
        if reader.read_uint() == 1:
            parent = reader.read_string()  # a root type's name
        else:
            parent = (reader.read_uint(), reader.read_uint())  # the parent item's id
        if info & _BIT6:
            reader.read_string()  # parentSub: a map key
    length, text = _read_content(reader, content_ref)
    if length <= 0:
        if strict or content_ref != _CONTENT_STRING:
            raise ProtocolError("struct of length zero")
        return 0
    parsed.structs.append(Struct(client, clock, length, text, origin, right_origin, parent))
    needs = predecessor + tuple(i for i in (origin, right_origin, parent) if isinstance(i, tuple))
    is_dead = content_ref == _CONTENT_DELETED
    parsed.blocks.append(Block(client, clock, length, reader.pos - start, needs, is_dead))
    if content_ref == _CONTENT_DELETED:
        parsed.dead_structs.append((client, clock, length))
    return length


def _read_content(reader: Reader, content_ref: int) -> tuple[int, str | None]:
    if content_ref == _CONTENT_DELETED:
        return reader.read_uint(), None
    if content_ref == 2:  # ContentJSON
        count = reader.read_uint()
        for _ in range(count):
            reader.read_string()
        return count, None
    if content_ref == 3:  # ContentBinary
        reader.read_bytes()
        return 1, None
    if content_ref == _CONTENT_STRING:
        text = reader.read_string()
        return utf16_length(text), text
    if content_ref == 5:  # ContentEmbed
        reader.read_string()
        return 1, None
    if content_ref == 6:  # ContentFormat
        reader.read_string(), reader.read_string()
        return 1, None
    if content_ref == 7:  # ContentType
        if reader.read_uint() in (_TYPE_XML_ELEMENT, _TYPE_XML_HOOK):
            reader.read_string()
        return 1, None
    if content_ref == 8:  # ContentAny
        count = reader.read_uint()
        for _ in range(count):
            _skip_any(reader)
        return count, None
    if content_ref == 9:  # ContentDoc
        reader.read_string()
        _skip_any(reader)
        return 1, None
    raise ProtocolError(f"unknown content type {content_ref}")


def _skip_any(reader: Reader) -> None:
    """Skips one lib0 `writeAny` value."""
    tag = reader.read_byte()
    if tag in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if tag == 125:  # varInt
        reader.read_uint()
    elif tag in (124, 123, 122):  # float32, float64, bigint
        for _ in range(4 if tag == 124 else 8):
            reader.read_byte()
    elif tag == 119:
        reader.read_string()
    elif tag == 118:
        for _ in range(reader.read_uint()):
            reader.read_string()
            _skip_any(reader)
    elif tag == 117:
        for _ in range(reader.read_uint()):
            _skip_any(reader)
    elif tag == 116:
        reader.read_bytes()
    else:
        raise ProtocolError(f"unknown value tag {tag}")


class SurrogateIndex:
    """Clocks that sit between the two halves of a surrogate pair, per client."""

    def __init__(self) -> None:
        self.inner_clocks: dict[int, set[int]] = {}

    def add(self, parsed: ParsedUpdate) -> None:
        for client, clock, _, text, *_ in parsed.structs:
            if text is None or text.isascii():
                continue
            offset = 0
            for char in text:
                if ord(char) > 0xFFFF:
                    self.inner_clocks.setdefault(client, set()).add(clock + offset + 1)
                    offset += 2
                else:
                    offset += 1

    def first_split(self, parsed: ParsedUpdate) -> tuple[int, int] | None:
        """The first (client, clock) where the update would split a pair, if any."""
        for client, clock in parsed.split_points:
            if clock in self.inner_clocks.get(client, ()):
                return client, clock
        return None


class DeleteIndex:
    """The ranges of clocks the document has deleted, per client, merged."""

    def __init__(self) -> None:
        self.ranges: dict[int, list[list[int]]] = {}  # client -> sorted [start, end)

    def add(self, parsed: ParsedUpdate) -> None:
        for client, start, length in parsed.deletions + parsed.dead_structs:
            if length > 0:
                self._add(client, start, start + length)

    def _add(self, client: int, start: int, end: int) -> None:
        ranges = self.ranges.setdefault(client, [])
        i = bisect.bisect_left(ranges, [start, start])
        if i > 0 and ranges[i - 1][1] >= start:
            i -= 1
        j = i
        while j < len(ranges) and ranges[j][0] <= end:
            start, end = min(start, ranges[j][0]), max(end, ranges[j][1])
            j += 1
        ranges[i:j] = [[start, end]]

    def covers(self, client: int, start: int, end: int) -> bool:
        ranges = self.ranges.get(client, [])
        i = bisect.bisect_right(ranges, [start, float("inf")]) - 1
        return i >= 0 and ranges[i][0] <= start and end <= ranges[i][1]


def decode_state_vector(state: bytes) -> dict[int, int]:
    reader = Reader(state)
    clocks = {}
    for _ in range(reader.read_uint()):
        client = reader.read_uint()
        clocks[client] = reader.read_uint()
    return clocks


def brings_news(parsed: ParsedUpdate, state: dict[int, int], deleted: DeleteIndex) -> bool:
    """Whether applying the update would change a document with this state."""
    for client, clock, length, *_ in parsed.structs:
        if clock + length > state.get(client, 0):
            return True
    return any(
        not deleted.covers(client, start, start + length)
        for client, start, length in parsed.deletions
        if length > 0
    )


def advance_clocks(clocks: dict[int, int], parsed: ParsedUpdate) -> None:
    """Moves a state vector (client -> next clock) past an update the document integrated whole."""
    for block in parsed.blocks:
        end = block.clock + block.length
        if end > clocks.get(block.client, 0):
            clocks[block.client] = end


# What one split of an existing item can add to the document's encoding: a block header, an origin id of two
# 64-bit varuints at most, and a content length. Deleting every other character of a 30 KB text cuts it into
# 24,000 items: the encoded document grows some ten times more than the delete set's own 48 KB.
SPLIT_BYTES = 24


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
    for client, start, length, num_bytes in _new_deletions(parsed, deleted):
        size += num_bytes + _uint_bytes(client) + 1 + 2 * SPLIT_BYTES
    return size


def extra_bytes(parsed: ParsedUpdate) -> int:
    """The most an integrated update can add to the document's encoding beyond its own bytes."""
    blocks = sum(_block_overhead(block) for block in parsed.blocks)
    return blocks + sum(_deletion_entry(*d) + 2 * SPLIT_BYTES for d in parsed.deletions)


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
