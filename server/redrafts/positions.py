"""Yjs relative positions in the document's text, resolved and made exactly as Yjs does.

A relative position names a character by its item id (client, clock), clocks counting UTF-16 units, plus
an association: `assoc >= 0` is the place before that character, `assoc < 0` the place after it. pycrdt
0.14's sticky indices cannot be trusted with them: its documents count offsets in UTF-8 bytes, and a
sticky index adds the bytes of the blocks before the character's block to the character's UTF-16 offset
inside its block. Once a document has several blocks and non-ASCII text (any document two people typed
"é" or an emoji into), positions come out shifted by the difference.

So `Layout` reads the block structure itself: it decodes the document's update (Yjs' v1 encoding) for the
items of the text, their ids, lengths, contents and deletions, and asks yrs only where each block begins
(a position at a block's first unit has no in-block part, so that offset is exact: the bytes of visible
text before the block). It checks that the visible blocks spell the text, then maps ids to indices and
back. Everything else in the redraft code works in code points; UTF-16 units stay in here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pycrdt import Assoc, Doc, StickyIndex, Text

from ..protocol import ProtocolError, Reader, write_bytes, write_int, write_uint
from ..updates import Struct, parse_update, utf16_length
from .merge import RangeError


@dataclass(frozen=True)
class _Block:
    client: int
    clock: int
    length: int  # UTF-16 units
    visible: bool
    text: str | None


class Layout:
    """Where every character of the text came from, for one state of the document.

    Built from the document's update on a replica of its own, so it can run on a worker thread (a pycrdt
    document belongs to the thread that uses it) while the live document goes on: asking yrs where each
    block starts costs a walk over the blocks before it, quadratic in a much-edited document.
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
        self._bytes_to_utf16 = _byte_to_utf16(value)
        self.blocks: dict[int, list[_Block]] = {}  # client -> blocks by clock
        for block in _pieces(_in_text(parsed.structs, name), parsed.deletions):
            self.blocks.setdefault(block.client, []).append(block)
        for blocks in self.blocks.values():
            blocks.sort(key=lambda block: block.clock)
        self._starts: dict[tuple[int, int], int] = {}
        visible = [b for blocks in self.blocks.values() for b in blocks if b.visible]
        with self.doc.transaction() as txn:
            for block in visible:
                self._starts[block.client, block.clock] = self._probe(txn, block)
        self.visible = sorted(visible, key=lambda b: self._starts[b.client, b.clock])
        self._visible_starts = [self._starts[b.client, b.clock] for b in self.visible]
        self._check()

    def _probe(self, txn, block: _Block) -> int:
        """UTF-16 offset of a block's first unit: yrs' byte offset there is exact (no in-block part)."""
        try:
            offset = StickyIndex.decode(_encode_item(block.client, block.clock, 0), self.text).get_index(txn)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            offset = None
        if offset is None or offset not in self._bytes_to_utf16:
            raise RangeError("cannot map this document's positions (a block starts inside a character)")
        return self._bytes_to_utf16[offset]

    def _check(self) -> None:
        at, spelled = 0, []
        for block, start in zip(self.visible, self._visible_starts, strict=True):
            if start != at:
                raise RangeError("cannot map this document's positions (its blocks do not tile the text)")
            spelled.append(block.text)
            at += block.length
        if "".join(spelled) != self.value:
            raise RangeError("cannot map this document's positions (its blocks do not spell the text)")

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
        start = self._starts.get((block.client, block.clock))
        if start is None:  # a deleted block: located only when asked
            with self.doc.transaction() as txn:
                start = self._starts[block.client, block.clock] = self._probe(txn, block)
        if not block.visible:
            return self._index(start)  # Yjs: where the deleted character was
        return self._index(start + clock - block.clock + (1 if assoc < 0 else 0))

    def _block_at(self, client: int, clock: int) -> _Block | None:
        blocks = self.blocks.get(client, [])
        i = bisect.bisect_right([b.clock for b in blocks], clock) - 1
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
        utf16 = utf16_length(self.value[:index])
        if assoc == Assoc.AFTER and index < len(self.value):
            client, clock = self._id_at(utf16)
            return _encode_item(client, clock, 0)
        if utf16 == 0:
            return _encode_type(self.name, -1)
        client, clock = self._id_at(utf16 - 1)
        return _encode_item(client, clock, -1)

    def _id_at(self, utf16: int) -> tuple[int, int]:
        i = bisect.bisect_right(self._visible_starts, utf16) - 1
        block = self.visible[i]
        return block.client, block.clock + utf16 - self._visible_starts[i]


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
