"""Reading Yjs v1 updates without applying them, to vet them before they reach the document.

Two checks need to see inside an update:
- A stock Yjs client can insert or delete between the two halves of a UTF-16
  surrogate pair (an emoji). Yjs then turns both halves into U+FFFD in its own
  copy, while the server's yrs copy splits the character differently: the replicas
  silently diverge. Such an update is refused; `SurrogateIndex` knows where the
  pairs are.
- A read-only client's sync step 2 is allowed when it brings nothing new;
  `DeleteIndex` knows which deletions the server already has.
- Budgets (`budgets.py`) need each struct's size and what it depends on: `Block`.

The layout follows Yjs' `UpdateDecoderV1` (yjs/src/utils/encoding.js).
"""

from __future__ import annotations

import bisect
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
    # Read whole by `_parse_typing` (string items after existing ones, nothing else): how, not what.
    is_typing: bool = field(default=False, compare=False)


def utf16_length(text: str) -> int:
    if text.isascii():  # most text, and most keystrokes: no encoding needed
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def parse_update(update: bytes, strict: bool = True) -> ParsedUpdate:
    """Parses a v1 update, raising ProtocolError when it is not one.

    strict=False accepts (and leaves out) empty string items, for reading the server's own documents: yrs
    writes them when an edit by byte offset splits a character (Yjs reads them as zero-length items). From
    a client one is refused."""
    return _parse_typing(update) or _parse_any(update, strict)


def _parse_typing(update: bytes) -> ParsedUpdate | None:
    """What typing sends, parsed in one pass without the general reader: one client's string items, each
    inserted after an existing item, and no deletions (a keystroke, a paste). None for any other update, or
    anything wrong with this one, which `_parse_any` then reads (and refuses with its reason). Issue 21: a
    keystroke in 40 % of the general parser's time, which was a third of vetting it."""
    try:
        if update[0] != 1:  # one client's structs
            return None
        num_structs, pos = _uint(update, 1)
        client, pos = _uint(update, pos)
        clock, pos = _uint(update, pos)
        structs, blocks, split_points = [], [], []
        for _ in range(num_structs):
            start = pos
            info = update[pos]
            if info != 0x84 and info != 0xC4:  # a string item with an origin, with or without a right origin
                return None
            origin_client, pos = _uint(update, pos + 1)
            origin_clock, pos = _uint(update, pos)
            origin = (origin_client, origin_clock)
            split_points.append((origin_client, origin_clock + 1))
            right_origin = None
            if info & _BIT7:
                right_client, pos = _uint(update, pos)
                right_clock, pos = _uint(update, pos)
                right_origin = (right_client, right_clock)
                split_points.append(right_origin)
            size, pos = _uint(update, pos)
            end = pos + size
            if end > len(update):
                return None
            text = update[pos:end].decode()
            pos = end
            length = utf16_length(text)
            if length == 0:
                return None
            structs.append(Struct(client, clock, length, text, origin, right_origin, None))
            needs = (origin, right_origin) if right_origin else (origin,)
            if clock > 0:
                needs = ((client, clock - 1), *needs)
            blocks.append(Block(client, clock, length, pos - start, needs, False))
            clock += length
        if pos != len(update) - 1 or update[pos] != 0:  # an empty delete set, and nothing after it
            return None
    except (IndexError, UnicodeDecodeError):
        return None
    return ParsedUpdate(structs, blocks, split_points, is_typing=True)


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    """A lib0 unsigned integer at `pos` and the position after it; IndexError when it is cut short or longer
    than 64 bits (the general reader then says which)."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + 1
        shift += 7
        if shift > 63:
            raise IndexError("integer longer than 64 bits")


def _parse_any(update: bytes, strict: bool) -> ParsedUpdate:
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
