"""A client's frames read by server/ws_frames.FrameReader: every message whole and in order however the bytes
are cut, and every breach of RFC 6455 refused with its close code."""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

from server.ws_frames import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    close_payload,
    control_frame,
    parse_close,
)
from tests.support.raw import client_frame as frame


def read_all(reader: FrameReader, stream: bytes, cuts: list[int]) -> list:
    messages, at = [], 0
    for cut in [*cuts, len(stream)]:
        messages += reader.feed(stream[at:cut])
        at = cut
    return messages


SIZES = [0, 1, 125, 126, 65535, 65536, 200_000]  # each length encoding at its edges


@pytest.mark.parametrize("size", SIZES)
def test_a_message_of_every_length_encoding_reads_whole_in_one_read_and_byte_by_byte_at_its_edges(size):
    payload = os.urandom(size)
    stream = frame(OP_BINARY, payload) + frame(OP_TEXT, b"after")
    assert FrameReader(1 << 20).feed(stream) == [(OP_BINARY, payload), (OP_TEXT, b"after")]
    # Cut inside the header, the mask, the payload and the next frame.
    cuts = sorted({c for c in (1, 2, 3, 5, 7, 9, 11, 13, 15, len(stream) // 2, len(stream) - 3) if 0 < c < len(stream)})
    reader = FrameReader(1 << 20)
    assert read_all(reader, stream, cuts) == [(OP_BINARY, payload), (OP_TEXT, b"after")]
    assert reader.error is None


def test_every_cut_of_a_stream_of_small_frames_gives_the_same_messages():
    stream = b"".join(frame(OP_BINARY, bytes([i]) * i) for i in range(20))
    expected = [(OP_BINARY, bytes([i]) * i) for i in range(20)]
    for cut in range(len(stream)):
        assert read_all(FrameReader(1000), stream, [cut]) == expected
    reader = FrameReader(1000)
    assert read_all(reader, stream, list(range(1, len(stream)))) == expected  # a byte a read


def test_a_frame_in_many_pieces_is_gathered_without_reparsing_each_piece():
    payload = os.urandom(1 << 20)
    stream = frame(OP_BINARY, payload)
    reader = FrameReader(2 << 20)
    pieces = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    out = []
    for piece in pieces:
        out += reader.feed(piece)
    assert out == [(OP_BINARY, payload)]


def test_fragments_make_one_message_with_control_frames_between_them_answered_in_order():
    stream = (
        frame(OP_TEXT, b"hel", fin=False)
        + frame(OP_PING, b"p1")
        + frame(0x0, b"lo ", fin=False)
        + frame(OP_PONG, b"")
        + frame(0x0, b"world")
        + frame(OP_BINARY, b"\x01")
    )
    expected = [(OP_PING, b"p1"), (OP_PONG, b""), (OP_TEXT, b"hello world"), (OP_BINARY, b"\x01")]
    assert FrameReader(100).feed(stream) == expected
    assert read_all(FrameReader(100), stream, list(range(1, len(stream), 3))) == expected


def test_nothing_after_a_close_frame_counts():
    reader = FrameReader(100)
    stream = frame(OP_BINARY, b"a") + frame(OP_CLOSE, struct.pack("!H", 1000)) + frame(OP_BINARY, b"b")
    assert reader.feed(stream) == [(OP_BINARY, b"a"), (OP_CLOSE, struct.pack("!H", 1000))]
    assert reader.feed(frame(OP_BINARY, b"c")) == []
    assert reader.error is None


BREACHES = [
    (frame(OP_BINARY, b"x", masked=False), CLOSE_PROTOCOL_ERROR, "masked"),
    (frame(OP_BINARY, b"x", rsv=4), CLOSE_PROTOCOL_ERROR, "reserved"),  # compressed, but nothing was negotiated
    (frame(OP_BINARY, b"x", rsv=1), CLOSE_PROTOCOL_ERROR, "reserved"),
    (frame(0x0, b"x"), CLOSE_PROTOCOL_ERROR, "no message to continue"),
    (frame(OP_BINARY, b"a", fin=False) + frame(OP_TEXT, b"b"), CLOSE_PROTOCOL_ERROR, "began before"),
    (frame(OP_PING, b"x", fin=False), CLOSE_PROTOCOL_ERROR, "control frames"),
    (bytes((0x89, 0x80 | 126, 0, 126)) + b"\0" * 4 + b"p" * 126, CLOSE_PROTOCOL_ERROR, "control frames"),
    (bytes((0x83, 0x80)) + b"\0" * 4, CLOSE_PROTOCOL_ERROR, "unknown opcode 3"),
    (bytes((0x8B, 0x80)) + b"\0" * 4, CLOSE_PROTOCOL_ERROR, "unknown opcode 11"),
    (frame(OP_BINARY, b"x" * 101), CLOSE_MESSAGE_TOO_BIG, "exceeds 100 bytes"),
    (frame(OP_BINARY, b"x" * 60, fin=False) + frame(0x0, b"y" * 41), CLOSE_MESSAGE_TOO_BIG, "message exceeds"),
]


@pytest.mark.parametrize("stream, code, reason", BREACHES)
def test_a_breach_keeps_what_came_before_it_and_ends_the_stream(stream, code, reason):
    reader = FrameReader(100)
    before = frame(OP_BINARY, b"fine")
    assert reader.feed(before + stream + frame(OP_BINARY, b"after")) == [(OP_BINARY, b"fine")]
    assert reader.error.code == code and reason in reader.error.reason
    assert reader.feed(frame(OP_BINARY, b"later")) == []


def test_a_message_too_big_is_refused_from_its_header_before_its_payload_arrives():
    reader = FrameReader(1000)
    header = bytes((0x82, 0x80 | 127)) + struct.pack("!Q", 1 << 40) + b"mask"
    assert reader.feed(header) == []
    assert reader.error.code == CLOSE_MESSAGE_TOO_BIG
    reader = FrameReader(1000)  # the second fragment's header says the message will not fit
    assert reader.feed(frame(OP_BINARY, b"x" * 600, fin=False) + frame(0x0, b"y" * 401)[:8]) == []
    assert reader.error.code == CLOSE_MESSAGE_TOO_BIG


def test_what_websockets_own_parser_reads_this_reads_too():
    """The same bytes through websockets' server-side frame parser: the same payloads."""
    stream = b"".join(frame(OP_BINARY, os.urandom(n)) for n in (0, 5, 125, 126, 300, 70000))
    ours = [payload for _, payload in FrameReader(1 << 20).feed(stream)]
    reader = StreamReader()
    reader.feed_data(stream)
    theirs = []
    for _ in range(6):
        parse = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parse)
        except StopIteration as done:
            theirs.append(done.value.data)
    assert ours == theirs


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"", (CLOSE_NO_STATUS, "")),
        (struct.pack("!H", 1000), (1000, "")),
        (struct.pack("!H", 4001) + "bye ✓".encode(), (4001, "bye ✓")),
    ],
)
def test_close_payloads_read(payload, expected):
    assert parse_close(payload) == expected


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"\x03", CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 1005), CLOSE_PROTOCOL_ERROR),  # reserved: never on the wire
        (struct.pack("!H", 999), CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 2000), CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 1000) + b"\xff", CLOSE_INVALID_DATA),
    ],
)
def test_bad_close_payloads_are_refused(payload, code):
    with pytest.raises(FrameError) as refused:
        parse_close(payload)
    assert refused.value.code == code


def test_server_frames_are_unmasked_and_a_long_reason_is_cut_on_a_character():
    assert control_frame(OP_PONG, b"hi") == b"\x8a\x02hi"
    payload = close_payload(4000, "é" * 100)  # 200 bytes of UTF-8
    assert len(payload) <= 125 and payload[2:].decode() == "é" * 61
    assert parse_close(payload) == (4000, "é" * 61)
