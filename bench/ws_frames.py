"""Reading a client's frames: websockets' parser against `server/ws_frames.FrameReader`, and the whole of
`ws_link.LinkProtocol.data_received` up to the room's callback (reported, never asserted).

Each is driven in process, after a real handshake, with a keystroke's masked frame (a 30-byte sync update),
one frame a read (a typist alone) and ten a read (a busy server reading late):

    python -m bench.ws_frames
    python -m bench.ws_frames --frames 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.frames import Frame
from websockets.server import ServerProtocol

from bench.ws_client import encode_frame
from server.ws_frames import OP_BINARY, FrameReader, apply_mask
from server.ws_link import LINK, LinkProtocol

HANDSHAKE = (
    b"GET /bench HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MAX_SIZE = 1 << 20


def keystroke_frame() -> bytes:
    payload = b"\x00\x02" + os.urandom(28)  # a sync update's message header and an update's worth of bytes
    return encode_frame(OP_BINARY, payload)  # masked, as the load generator's client sends it


def per_frame_us(feed, chunk: bytes, frames_per_chunk: int, frames: int) -> float:
    reads = frames // frames_per_chunk
    start = time.perf_counter()
    for _ in range(reads):
        feed(chunk)
    return (time.perf_counter() - start) / (reads * frames_per_chunk) * 1e6


def websockets_parser() -> tuple:
    """websockets' server side after the handshake, as uvicorn's protocol uses it: bytes in, frame events out."""
    protocol = ServerProtocol(max_size=MAX_SIZE)
    protocol.receive_data(HANDSHAKE)
    protocol.send_response(protocol.accept(protocol.events_received()[0]))
    protocol.data_to_send()
    received = []

    def feed(data: bytes) -> None:
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                received.append(event.data)

    return feed, received


def frame_reader() -> tuple:
    reader = FrameReader(MAX_SIZE)
    received = []

    def feed(data: bytes) -> None:
        for _, payload in reader.feed(data):
            received.append(payload)

    return feed, received


class _Transport:
    """What the protocol writes to and pauses: nothing, so only the protocol's own work is timed."""

    def write(self, data) -> None:
        pass

    def writelines(self, data) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def link_protocol() -> tuple:
    """A LinkProtocol through the handshake and an application that takes the connection over, as a room does."""
    received = []

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        scope["extensions"][LINK].take_over(received.append, lambda: None)

    config = Config(app=app, ws="websockets-sansio", ws_max_size=MAX_SIZE, ws_ping_interval=None, log_level="warning")
    config.load()
    protocol = LinkProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    protocol.connection_made(_Transport())
    protocol.data_received(HANDSHAKE)
    for _ in range(10):  # the application's task runs
        await asyncio.sleep(0)
    assert protocol._on_message is not None, "the application did not take the connection over"
    return protocol.data_received, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames per measurement")
    args = parser.parse_args()
    frame = keystroke_frame()
    expected = apply_mask(frame[6:], frame[2:6])
    rows = []
    for name, make in (
        ("websockets' parser", websockets_parser),
        ("FrameReader", frame_reader),
        ("LinkProtocol.data_received", lambda: asyncio.run(link_protocol())),
    ):
        timings = []
        for per_read in (1, 10):
            feed, received = make()
            timings.append(per_frame_us(feed, frame * per_read, per_read, args.frames))
            assert len(received) == args.frames // per_read * per_read and received[-1] == expected, name
        rows.append((name, *timings))
    print(f"{'reader':<28}  {'1 frame a read':>15}  {'10 frames a read':>17}")
    for name, one, ten in rows:
        print(f"{name:<28}  {one:>10.2f} µs/f  {ten:>12.2f} µs/f")


if __name__ == "__main__":
    main()
