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

from ..protocol import ProtocolError, Reader
from ..updates import Struct, parse_update, utf16_length
from .merge import RangeError

@dataclass(frozen=True)
class _Block:
    client: int
    clock: int
    length: int  # UTF-16 units
    start: int  # UTF-16 offset in the text where the block is (or was, when deleted)
    visible: bool


class Layout:
    """Where every character of `text` came from, for one state of the document."""

    def __init__(self, doc: Doc, text: Text, name: str, value: str):
        self.value = value
        self.length16 = utf16_length(value)
        self.name = name
        try:
            parsed = parse_update(doc.get_update())
        except ProtocolError as exc:
            raise RangeError(f"cannot read this document's structure: {exc}") from None
        deleted: dict[int, list[tuple[int, int]]] = {}
        for client, clock, length in parsed.deletions:
            deleted.setdefault(client, []).append((clock, length))
        pieces = _visible_pieces(_in_text(parsed.structs, name), deleted)
        starts = self._block_starts(doc, text, pieces)
        self.blocks: dict[int, list[_Block]] = {}  # client -> blocks by clock
        for piece, start in zip(pieces, starts, strict=True):
            self.blocks.setdefault(piece[0], []).append(_Block(*piece[:3], start, piece[3]))
        for blocks in self.blocks.values():
            blocks.sort(key=lambda block: block.clock)
        self.visible = sorted((b for bs in self.blocks.values() for b in bs if b.visible and b.length), key=lambda b: b.start)
        self._check(pieces, starts)

    def _block_starts(self, doc: Doc, text: Text, pieces) -> list[int]:
        """UTF-16 offset of each block's first unit, from yrs' (exact, at a block start) byte offset."""
        boundaries = _byte_to_utf16(self.value)
        starts = []
        with doc.transaction() as txn:
            for client, clock, *_ in pieces:
                sticky = StickyIndex.decode(_encode_item(client, clock, 0), text)
                offset = sticky.get_index(txn)
                if offset is None or offset not in boundaries:
                    raise RangeError("cannot map this document's positions (a block starts inside a character)")
                starts.append(boundaries[offset])
        return starts

    def _check(self, pieces, starts) -> None:
        spelled, at = [], 0
        texts = {(p[0], p[1]): p[4] for p in pieces}
        for block in self.visible:
            if block.start != at:
                raise RangeError("cannot map this document's positions (its blocks do not tile the text)")
            spelled.append(texts[block.client, block.clock])
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
            assoc = _read_int(reader) if not reader.is_done else 0
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
        if not block.visible:
            return self._index(block.start)  # Yjs: where the deleted character was
        return self._index(block.start + clock - block.clock + (1 if assoc < 0 else 0))

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
        i = bisect.bisect_right([b.start for b in self.visible], utf16) - 1
        block = self.visible[i]
        return block.client, block.clock + utf16 - block.start


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


def _visible_pieces(structs: list[Struct], deleted: dict[int, list[tuple[int, int]]]):
    """(client, clock, length, visible, text) for each run of a struct that is wholly deleted or not."""
    pieces = []
    for struct in structs:
        cuts = {struct.clock, struct.clock + struct.length}
        ranges = deleted.get(struct.client, [])
        for clock, length in ranges:
            for edge in (clock, clock + length):
                if struct.clock < edge < struct.clock + struct.length:
                    cuts.add(edge)
        edges = sorted(cuts)
        for start, end in zip(edges, edges[1:]):
            gone = struct.text is None or any(c <= start and end <= c + n for c, n in ranges)
            text = None if struct.text is None else _utf16_slice(struct.text, start - struct.clock, end - struct.clock)
            pieces.append((struct.client, start, end - start, not gone, text))
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


def _read_int(reader: Reader) -> int:
    """lib0's signed varint: sign in bit 6 of the first byte, 6 bits there, 7 in each next one."""
    byte = reader.read_byte()
    value, negative, shift = byte & 0x3F, bool(byte & 0x40), 6
    while byte & 0x80:
        byte = reader.read_byte()
        value |= (byte & 0x7F) << shift
        shift += 7
    return -value if negative else value


def _uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _int(value: int) -> bytes:
    magnitude, first = abs(value), 0x40 if value < 0 else 0
    first |= magnitude & 0x3F
    magnitude >>= 6
    if not magnitude:
        return bytes([first])
    return bytes([first | 0x80]) + _uint(magnitude)


def _encode_item(client: int, clock: int, assoc: int) -> bytes:
    return _uint(0) + _uint(client) + _uint(clock) + _int(assoc)


def _encode_type(name: str, assoc: int) -> bytes:
    raw = name.encode()
    return _uint(1) + _uint(len(raw)) + raw + _int(assoc)
