"""The y-websocket codec: round trips, and clear errors for every malformed frame."""

import pytest

from server.protocol import (
    SYNC_STEP1,
    SYNC_STEP2,
    SYNC_UPDATE,
    AwarenessMessage,
    ProtocolError,
    QueryAwarenessMessage,
    Reader,
    SyncMessage,
    decode_message,
    encode_awareness,
    encode_sync,
    write_int,
    write_uint,
)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**53 - 1])
def test_uint_round_trip(value):
    payload = write_uint(value) + b"x"
    frame = bytes([0, 0]) + write_uint(len(payload)) + payload
    assert decode_message(frame) == SyncMessage(SYNC_STEP1, payload)


@pytest.mark.parametrize("value, encoded", [(0, b"\x00"), (-1, b"\x41"), (63, b"\x3f"), (64, b"\x80\x01"),
                                            (-200, b"\xc8\x03"), (2**40, None)])
def test_signed_int_round_trip(value, encoded):
    # lib0's writeVarInt bytes, as Yjs writes a relative position's association
    assert encoded is None or write_int(value) == encoded
    reader = Reader(write_int(value) + b"x")
    assert reader.read_int() == value and reader.read_byte() == ord("x")


@pytest.mark.parametrize("size", [0, 1, 126, 127, 128, 129, 300])  # around the one-byte length's fast path
def test_sync_messages_round_trip_at_every_length(size):
    for kind in (SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE):
        payload = bytes(range(256))[:size] * 2 if size > 256 else bytes(range(256))[:size]
        assert decode_message(encode_sync(kind, payload)) == SyncMessage(kind, payload)


def test_a_length_byte_that_matches_the_frame_only_when_misread_is_not_taken_at_its_word():
    frame = b"\x00\x02\x85" + b"x" * 133  # 136 bytes: 0x85 is the first byte of a longer length, not 133
    with pytest.raises(ProtocolError, match="runs past the frame end"):
        decode_message(frame)


def test_messages_round_trip():
    assert decode_message(encode_sync(SYNC_UPDATE, b"\x00\x00")) == SyncMessage(SYNC_UPDATE, b"\x00\x00")
    assert decode_message(encode_awareness(b"\x00")) == AwarenessMessage(b"\x00")
    assert decode_message(b"\x03") == QueryAwarenessMessage()


@pytest.mark.parametrize(
    "frame, error",
    [
        (b"", "truncated integer"),
        (b"\x00", "truncated integer"),
        (b"\x00\x05\x00", "unknown sync message type 5"),
        (b"\x00\x02\x05\x00\x00", "runs past the frame end"),
        (b"\x00\x02\x02\x00\x00\xff", "1 trailing bytes"),
        (b"\x09", "unknown message type 9"),
        (b"\x02\x00\x00", "server to client"),
        (b"\x00\x02" + b"\xff" * 11, "longer than 64 bits"),
    ],
)
def test_malformed_frames_are_named(frame, error):
    with pytest.raises(ProtocolError, match=error):
        decode_message(frame)
