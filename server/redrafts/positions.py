"""Positions in the document's text: UTF-16 offsets, and Yjs relative positions resolved and made exactly
as Yjs does.

Three ways of counting positions meet in the redraft code: browsers count UTF-16 code units, Python strings
count code points, and pycrdt 0.14 indexes `Text` edits by UTF-8 bytes. The redraft code works in code
points; UTF-16 offsets are converted here (a request's `start_index`, `Layout`'s clocks).

A relative position names a character by its item id (client, clock), clocks counting UTF-16 units, plus
an association: `assoc >= 0` is the place before that character, `assoc < 0` the place after it. pycrdt
0.14's sticky indices cannot be trusted with them: its documents count offsets in UTF-8 bytes, and a
sticky index adds the bytes of the blocks before the character's block to the character's UTF-16 offset
inside its block. Once a document has several blocks and non-ASCII text (any document two people typed
"é" or an emoji into), positions come out shifted by the difference.

So `Layout` reads the block structure itself: it decodes the document's update (Yjs' v1 encoding) for the
items of the text, their ids, lengths, contents and deletions. To resolve an id it asks yrs where that
id's block begins (at a block's first unit there is no in-block part, so that offset is exact: the bytes
of visible text before the block). To pin a character it asks yrs for the id at the character's byte
offset, which names the right block with a clock off by the unit mix, and corrects it from the block's
start. Every answer is checked against the text (the block's content must stand where yrs puts it).
Each question walks the blocks before it, so only the blocks a request touches are asked about.
Everything else in the redraft code works in code points; UTF-16 units stay in here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pycrdt import Assoc, Doc, StickyIndex, Text

from ..protocol import ProtocolError, Reader, write_bytes, write_int, write_uint
from ..updates import Struct, parse_update


class RangeError(ValueError):
    """A range that does not resolve: bad position, reversed, out of the text, splitting a character."""


def utf16_to_index(text: str, utf16: int) -> int:
    """Code point index of a UTF-16 offset; refuses offsets outside the text or inside a surrogate pair."""
    if not isinstance(utf16, int) or isinstance(utf16, bool) or utf16 < 0:
        raise RangeError(f"index must be a non-negative integer, not {utf16!r}")
    units = 0
    for i, char in enumerate(text):
        if units == utf16:
            return i
        units += 2 if ord(char) > 0xFFFF else 1
        if units > utf16:
            raise RangeError(f"index {utf16} falls inside a character (a surrogate pair)")
    if units == utf16:
        return len(text)
    raise RangeError(f"index {utf16} is beyond the end of the text ({units} UTF-16 units)")


@dataclass(frozen=True)
class _Block:
    client: int
    clock: int
    length: int  # UTF-16 units
    visible: bool
    text: str | None


class Layout:
    """Where the characters of the text came from, for one state of the document.

    Built from the document's update on a replica of its own, so it can run on a worker thread (a pycrdt
    document belongs to the thread that uses it) while the live document goes on. yrs is asked only about
    the blocks a request touches (each question walks the blocks before it), and each answer is checked
    against the text: the block's content must stand where yrs says it starts.
    """

    def __init__(self, update: bytes, name: str, value: str):
        self.value, self.name = value, name
        self.doc = Doc()
        self.text = self.doc.get(name, type=Text)
        try:
            self.doc.apply_update(update)
            parsed = parse_update(update, strict=False)
        except ProtocolError as exc:
            raise RangeError(f"cannot read this document's structure: {exc}") from None
        except BaseException as exc:  # pyo3 turns a Rust panic into a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise RangeError(f"cannot read this document: {exc}") from None
        if str(self.text) != value:
            raise RangeError("the document's update does not hold the text it was taken with")
        self._encoded = value.encode("utf-8", errors="surrogatepass")
        self._bytes_to_utf16 = _byte_to_utf16(value)
        self.blocks: dict[int, list[_Block]] = {}  # client -> blocks by clock
        for block in _pieces(_in_text(parsed.structs, name), parsed.deletions):
            self.blocks.setdefault(block.client, []).append(block)
        for blocks in self.blocks.values():
            blocks.sort(key=lambda block: block.clock)
        self._clocks = {client: [b.clock for b in blocks] for client, blocks in self.blocks.items()}

    def _yrs_offset(self, client: int, clock: int) -> int | None:
        """yrs' offset of the position before (client, clock): bytes of the visible blocks before its block,
        plus (mixing units) the clock offset inside it. Exact bytes at a block's first unit."""
        try:
            with self.doc.transaction() as txn:
                return StickyIndex.decode(_encode_item(client, clock, 0), self.text).get_index(txn)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return None

    def _block_start(self, block: _Block, at_byte: int | None = None) -> int | None:
        """The block's UTF-16 offset in the text, checked: a visible block's content must stand there (and
        there, when at_byte is given). None when yrs' answer does not fit."""
        offset = self._yrs_offset(block.client, block.clock)
        if offset is None or offset not in self._bytes_to_utf16 or (at_byte is not None and offset != at_byte):
            return None
        if block.visible:
            content = block.text.encode("utf-8", errors="surrogatepass")
            if self._encoded[offset : offset + len(content)] != content:
                return None
        return self._bytes_to_utf16[offset]

    # --- relative position -> index ------------------------------------------------------------------

    def resolve(self, encoded: bytes) -> int:
        """The code point index a relative position points at now; RangeError when it is not one of this
        text's positions."""
        try:
            reader = Reader(encoded)
            kind = reader.read_uint()
            if kind == 0:
                target: object = (reader.read_uint(), reader.read_uint())
            elif kind == 1:
                target = reader.read_string()
            elif kind == 2:
                target = ("type", reader.read_uint(), reader.read_uint())
            else:
                raise ProtocolError(f"unknown kind {kind}")
            assoc = reader.read_int() if not reader.is_done else 0
        except ProtocolError as exc:
            raise RangeError(f"the relative position does not decode: {exc}") from None
        if isinstance(target, str):  # the text itself: its start or its end
            if target != self.name:
                raise RangeError("the relative position belongs to another shared type")
            return len(self.value) if assoc >= 0 else 0
        if len(target) == 3:
            raise RangeError("the relative position belongs to another shared type")
        client, clock = target
        block = self._block_at(client, clock)
        if block is None:
            raise RangeError("the relative position does not resolve in this document")
        start = self._block_start(block)
        if start is None:
            raise RangeError("cannot map this document's positions (yrs places a block where its text is not)")
        if not block.visible:
            return self._index(start)  # Yjs: where the deleted character was
        return self._index(start + clock - block.clock + (1 if assoc < 0 else 0))

    def _block_at(self, client: int, clock: int) -> _Block | None:
        blocks = self.blocks.get(client, [])
        i = bisect.bisect_right(self._clocks.get(client, []), clock) - 1
        if i >= 0 and clock < blocks[i].clock + blocks[i].length:
            return blocks[i]
        return None

    def _index(self, utf16: int) -> int:
        """Code point index of a UTF-16 offset; inside a surrogate pair counts as after it (as Yjs would
        show it: an editor cannot put a cursor there)."""
        units = 0
        for i, char in enumerate(self.value):
            if units >= utf16:
                return i
            units += 2 if ord(char) > 0xFFFF else 1
        return len(self.value)

    # --- index -> relative position ------------------------------------------------------------------

    def pin(self, index: int, assoc: Assoc) -> bytes:
        """`Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(text, index, assoc))` for a code
        point index. AFTER at the very end would follow the end of the text as it grows: BEFORE there."""
        if assoc == Assoc.AFTER and index < len(self.value):
            client, clock = self.char_id(index)
            return _encode_item(client, clock, 0)
        if index == 0:
            return _encode_type(self.name, -1)
        client, clock = self.char_id(index - 1)
        last_unit = 1 if ord(self.value[index - 1]) > 0xFFFF else 0  # Yjs names a pair's low surrogate here
        return _encode_item(client, clock + last_unit, -1)

    def char_id(self, index: int) -> tuple[int, int]:
        """The item id of the character at a code point index.

        yrs, asked for the byte offset b of that character, walks whole blocks by their bytes and names
        (the client of the block holding b, its first clock + the bytes from the block's start to b): the
        block is right, the clock is not in UTF-16 units. The block is the one of that client, at or before
        that clock, whose start yrs puts at b minus that many bytes, and whose text stands there.
        """
        at_byte = len(self.value[:index].encode("utf-8", errors="surrogatepass"))
        try:
            named = self.text.sticky_index(at_byte, Assoc.AFTER).to_json()["item"]
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise RangeError(f"cannot map this document's positions ({exc})") from None
        client, clock = named["client"], named["clock"]
        blocks = self.blocks.get(client, [])
        for i in range(bisect.bisect_right(self._clocks.get(client, []), clock) - 1, -1, -1):
            block = blocks[i]
            into = clock - block.clock  # bytes from the block's start
            if not block.visible or into >= len(block.text.encode("utf-8", errors="surrogatepass")):
                continue
            start = self._block_start(block, at_byte - into)
            if start is not None:
                return client, block.clock + self._bytes_to_utf16[at_byte] - start
        raise RangeError("cannot map this document's positions (no block of the text holds that character)")


def _in_text(structs: list[Struct], name: str) -> list[Struct]:
    """The structs whose parent is the root type `name`: given, or inherited from an origin's item."""
    by_client: dict[int, list[Struct]] = {}
    for struct in structs:
        by_client.setdefault(struct.client, []).append(struct)
    for items in by_client.values():
        items.sort(key=lambda struct: struct.clock)
    clocks = {client: [s.clock for s in items] for client, items in by_client.items()}

    def owner(item_id: tuple[int, int]) -> Struct | None:
        client, clock = item_id
        i = bisect.bisect_right(clocks.get(client, []), clock) - 1
        if i >= 0 and clock < by_client[client][i].clock + by_client[client][i].length:
            return by_client[client][i]
        return None

    parents: dict[tuple[int, int], object] = {}  # (client, clock) -> parent, given or inherited
    for struct in structs:
        chain: list[Struct] = []
        current: Struct | None = struct
        # Iterative: typing makes each character's origin the one before, chains as long as the text.
        while current is not None and current.parent is None and current[:2] not in parents:
            chain.append(current)
            link = current.origin or current.right_origin
            current = owner(link) if link else None
            if current is not None and any(current is item for item in chain[-2:]):
                current = None  # a malformed self-reference
        if current is None:
            parent = None
        else:
            parent = current.parent if current.parent is not None else parents[current[:2]]
        for item in chain:
            parents[item[:2]] = parent
        if struct.parent is not None:
            parents[struct[:2]] = struct.parent
    return [s for s in structs if parents.get(s[:2]) == name]


def _pieces(structs: list[Struct], deletions: list[tuple[int, int, int]]) -> list[_Block]:
    """The structs cut where the delete set starts or stops removing: each piece wholly visible or not."""
    deleted: dict[int, list[tuple[int, int]]] = {}
    for client, clock, length in sorted(deletions):
        ranges = deleted.setdefault(client, [])
        if ranges and clock <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], clock + length))  # overlapping or touching
        else:
            ranges.append((clock, clock + length))
    starts = {client: [start for start, _ in ranges] for client, ranges in deleted.items()}
    pieces = []
    for struct in structs:
        ranges = deleted.get(struct.client, [])
        i = max(0, bisect.bisect_right(starts.get(struct.client, []), struct.clock) - 1)
        at, end = struct.clock, struct.clock + struct.length
        while at < end:
            while i < len(ranges) and ranges[i][1] <= at:
                i += 1
            if i < len(ranges) and ranges[i][0] <= at:  # inside a deleted range
                upto, visible = min(end, ranges[i][1]), False
            else:
                upto, visible = min(end, ranges[i][0]) if i < len(ranges) else end, True
            text = None if struct.text is None else _utf16_slice(struct.text, at - struct.clock, upto - struct.clock)
            pieces.append(_Block(struct.client, at, upto - at, visible and text is not None, text))
            at = upto
    return pieces


def _utf16_slice(text: str, start: int, end: int) -> str:
    units = text.encode("utf-16-le", errors="surrogatepass")
    return units[2 * start : 2 * end].decode("utf-16-le", errors="surrogatepass")


def _byte_to_utf16(value: str) -> dict[int, int]:
    """UTF-8 byte offset -> UTF-16 offset at every character boundary."""
    table, nbytes, units = {0: 0}, 0, 0
    for char in value:
        nbytes += len(char.encode("utf-8", errors="surrogatepass"))
        units += 2 if ord(char) > 0xFFFF else 1
        table[nbytes] = units
    return table


def _encode_item(client: int, clock: int, assoc: int) -> bytes:
    """`Y.encodeRelativePosition` of a position at an item: kind 0, the item's id, the association."""
    return write_uint(0) + write_uint(client) + write_uint(clock) + write_int(assoc)


def _encode_type(name: str, assoc: int) -> bytes:
    """... at a root type itself (its start or end): kind 1, the type's name, the association."""
    return write_uint(1) + write_bytes(name.encode()) + write_int(assoc)
