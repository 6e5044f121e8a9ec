"""The room's direct link to its websockets (server/ws_link.py), under uvicorn as `redraft serve` runs it.

In-process, so the test can look at the event loop: a taken-over connection has no task of its own, reads
its messages as they arrive (also those sent before the room took it), and leaves the room when it closes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from pycrdt import Doc, Text
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from server.config import ServerConfig
from server.protocol import SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, decode_message, encode_sync
from server.ws_frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT
from server.ws_link import LINK, LinkProtocol
from tests.support.inprocess import serving, text_of
from tests.support.processes import free_port
from tests.support.raw import client_frame


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def server(tmp_path):
    async with serving(ServerConfig(port=free_port(), data_dir=tmp_path)) as (app, url):
        yield app, url


def server_tasks() -> list[asyncio.Task]:
    """Tasks of the server's side (the clients' websockets library runs its own in this loop too)."""
    return [task for task in asyncio.all_tasks() if "site-packages/websockets/" not in task.get_coro().cr_code.co_filename]


def typed(value: str) -> bytes:
    doc = Doc()
    doc.get("content", type=Text).insert(0, value)
    return doc.get_update()


@pytest.mark.anyio
async def test_taken_over_connections_keep_no_task_and_still_exchange_every_update(server):
    app, url = server
    async with connect(f"{url}/warm") as ws:  # the first connection loads what a server loads once
        await text_of(ws)
    await asyncio.sleep(0.1)
    tasks_before = len(server_tasks())
    clients = [await connect(f"{url}/linked") for _ in range(20)]
    try:
        for ws in clients:
            await text_of(ws)
        await asyncio.sleep(0.1)
        assert len(server_tasks()) - tasks_before <= 2  # the room's own (flusher, housekeeping), not 20+
        await clients[0].send(encode_sync(SYNC_UPDATE, typed("hello")))
        for ws in clients[1:]:
            message = decode_message(await asyncio.wait_for(ws.recv(), 5))
            assert message.kind == SYNC_UPDATE and b"hello" in message.payload
    finally:
        for ws in clients:
            await ws.close()
    room = app.state.services.rooms.rooms.get("linked")
    for _ in range(100):  # every goodbye reached the room
        if room is None or not room.peers:
            break
        await asyncio.sleep(0.02)
    assert room is None or not room.peers
    assert app.state.services.connections_by_address == {}


@pytest.mark.anyio
async def test_messages_sent_with_the_handshake_arrive_and_deflate_is_not_negotiated(server):
    _, url = server
    async with connect(f"{url}/eager") as ws:  # the client offers permessage-deflate, as browsers do
        assert ws.protocol.extensions == []  # 46 KiB of compression contexts per connection if accepted
        # Sent before the room has taken the connection over: they wait in ASGI's queue and come first.
        await ws.send(encode_sync(SYNC_UPDATE, typed("early ")))
        await ws.send(encode_sync(SYNC_STEP1, b"\x00"))
        while True:
            message = decode_message(await asyncio.wait_for(ws.recv(), 5))
            if getattr(message, "kind", None) == SYNC_STEP2:
                doc = Doc()
                doc.apply_update(message.payload)
                assert str(doc.get("content", type=Text)) == "early "
                break
    async with connect(f"{url}/eager") as ws:
        assert await text_of(ws) == "early "


class RawClient:
    """A websocket client written out by hand, to send what no library would: frames glued to the request,
    fragments, unmasked or reserved-bit frames, bad close payloads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, path: str) -> "RawClient":
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET /ws/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), host.encode(), key)
        )
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert response.startswith(b"HTTP/1.1 101"), response
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def next_frame(self) -> tuple[int, bytes]:
        """The server's next frame (unmasked): (opcode, payload)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 5)
        assert not second & 0x80, "a server's frames are never masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def frame_of(self, opcode: int) -> bytes:
        """The payload of the next frame with `opcode`, past sync and awareness messages."""
        while True:
            got, payload = await self.next_frame()
            if got == opcode:
                return payload

    async def step2_text(self) -> str:
        """The text of the server's next sync step 2."""
        while True:
            message = decode_message(await self.frame_of(OP_BINARY))
            if getattr(message, "kind", None) == SYNC_STEP2:
                doc = Doc()
                doc.apply_update(message.payload)
                return str(doc.get("content", type=Text))

    async def ends(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""


@pytest.mark.anyio
async def test_fragments_with_a_ping_between_them_make_one_message(server):
    _, url = server
    client = await RawClient.open(url, "fragments")
    more = encode_sync(SYNC_UPDATE, typed("fragmented"))
    cut = len(more) // 2
    client.send(
        client_frame(OP_BINARY, more[:cut], fin=False)
        + client_frame(OP_PING, b"between")
        + client_frame(0x0, more[cut:])
        + client_frame(OP_BINARY, encode_sync(SYNC_STEP1, b"\x00"))
    )
    assert await client.frame_of(OP_PONG) == b"between"
    assert await client.step2_text() == "fragmented"
    client.writer.close()
    await client.writer.wait_closed()


@pytest.mark.anyio
async def test_a_ping_is_answered_and_a_close_echoed_and_the_client_leaves_the_room(server):
    app, url = server
    client = await RawClient.open(url, "closing")
    client.send(client_frame(OP_BINARY, encode_sync(SYNC_STEP1, b"\x00")))
    assert await client.step2_text() == ""
    client.send(client_frame(OP_PING, b"are you there"))
    assert await client.frame_of(OP_PONG) == b"are you there"
    client.send(client_frame(OP_CLOSE, struct.pack("!H", 4000) + b"bye"))
    assert await client.frame_of(OP_CLOSE) == struct.pack("!H", 4000)
    assert await client.ends()
    client.writer.close()
    room = app.state.services.rooms.rooms.get("closing")
    for _ in range(100):
        if room is None or not room.peers:
            break
        await asyncio.sleep(0.02)
    assert room is None or not room.peers


BREACHES = [
    (client_frame(OP_BINARY, b"\x00\x00", masked=False), 1002, b"masked"),
    (client_frame(OP_BINARY, b"\x00\x00", rsv=4), 1002, b"reserved bits"),
    (client_frame(OP_TEXT, b"\xff\xfe"), 1007, b"UTF-8"),
    (client_frame(OP_CLOSE, struct.pack("!H", 1006)), 1002, b"close code 1006"),
    (client_frame(OP_BINARY, b"x", fin=False) + client_frame(OP_BINARY, b"y"), 1002, b"began before"),
    # Past uvicorn's ws_max_size (4x max_message_bytes), refused from the header alone.
    (bytes((0x82, 0xFF)) + struct.pack("!Q", 1 << 30) + b"mask", 1009, b"exceeds"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("breach, code, reason", BREACHES)
async def test_a_protocol_breach_closes_that_client_with_its_code_and_the_room_serves_the_others(
    server, breach, code, reason
):
    _, url = server
    async with connect(f"{url}/breach") as other:
        await text_of(other)
        client = await RawClient.open(url, "breach")
        client.send(client_frame(OP_BINARY, encode_sync(SYNC_UPDATE, typed("kept "))) + breach)
        payload = await client.frame_of(OP_CLOSE)
        assert struct.unpack("!H", payload[:2])[0] == code and reason in payload[2:]
        assert await client.ends()
        client.writer.close()
        while True:  # what came before the breach counts
            update = decode_message(await asyncio.wait_for(other.recv(), 5))
            if getattr(update, "kind", None) == SYNC_UPDATE:
                assert b"kept" in update.payload
                break
        await other.send(encode_sync(SYNC_UPDATE, typed("still served ")))
    async with connect(f"{url}/breach") as later:
        text = await text_of(later)
        assert "kept " in text and "still served " in text


class RecordingTransport:
    """What LinkProtocol writes, and whether it reads: the protocol alone, without a socket."""

    def __init__(self):
        self.written = b""
        self.writes = 0  # calls: each is one send to the socket
        self.is_reading = True
        self.is_closed = False

    def write(self, data) -> None:
        self.written += data
        self.writes += 1

    def writelines(self, data) -> None:
        self.written += b"".join(data)
        self.writes += 1

    def is_closing(self) -> bool:
        return self.is_closed

    def close(self) -> None:
        self.is_closed = True

    def pause_reading(self) -> None:
        self.is_reading = False

    def resume_reading(self) -> None:
        self.is_reading = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


REQUEST = (
    b"GET /ws/early HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def requested(app) -> tuple[LinkProtocol, RecordingTransport]:
    """A LinkProtocol on a RecordingTransport that has read REQUEST, with `app` run as far as it goes."""
    config = Config(app=app, ws_max_size=1000, ws_ping_interval=None, log_level="warning")
    config.load()
    protocol = LinkProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    for _ in range(5):
        await asyncio.sleep(0)
    return protocol, transport


@pytest.mark.anyio
async def test_frames_sent_before_the_response_wait_unread_and_arrive_first():
    """A client should wait for the handshake's response before it sends frames (RFC 6455 §4.1). One that does
    not is read no further until the application accepts; then its frames arrive, before any later ones."""
    accepting, received = asyncio.Event(), []

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await accepting.wait()  # a room loading
        await send({"type": "websocket.accept"})
        scope["extensions"][LINK].take_over(received.append, lambda: None)

    protocol, transport = await requested(app)
    protocol.data_received(client_frame(OP_BINARY, b"early") + client_frame(OP_BINARY, b"ea"))
    assert not transport.is_reading and received == [] and transport.written == b""
    accepting.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert transport.written.startswith(b"HTTP/1.1 101")
    protocol.data_received(client_frame(OP_BINARY, b"later"))
    assert received == [b"early", b"ea", b"later"] and transport.is_reading
    protocol.data_received(client_frame(OP_PING, b"?"))
    assert transport.written.endswith(b"\x8a\x01?")


@pytest.mark.anyio
async def test_pings_from_a_client_that_reads_nothing_are_not_answered_into_an_endless_buffer():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        scope["extensions"][LINK].take_over(lambda message: None, lambda: None)

    protocol, transport = await requested(app)
    protocol.data_received(client_frame(OP_PING, b"1"))
    assert transport.written.endswith(b"\x8a\x011")
    protocol.pause_writing()  # the transport's buffer is past its high-water mark
    written = len(transport.written)
    protocol.data_received(client_frame(OP_PING, b"2") * 100)
    assert len(transport.written) == written
    protocol.resume_writing()
    protocol.data_received(client_frame(OP_PING, b"3"))
    assert transport.written.endswith(b"\x8a\x013")


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(first byte, payload) of each unmasked frame in `data`, a server's frames back to back."""
    frames, at = [], 0
    while at < len(data):
        first, length = data[at], data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,), at = struct.unpack("!H", data[at : at + 2]), at + 2
        elif length == 127:
            (length,), at = struct.unpack("!Q", data[at : at + 8]), at + 8
        frames.append((first, data[at : at + length]))
        at += length
    return frames


@pytest.mark.anyio
async def test_several_messages_written_together_go_in_one_send_each_a_frame_of_its_own():
    links = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        links.append(scope["extensions"][LINK])
        links[0].take_over(lambda message: None, lambda: None)

    protocol, transport = await requested(app)
    handshake, writes = len(transport.written), transport.writes
    large = os.urandom(70_000)  # past 64 KiB: a 64-bit length, and the pieces go out without a copy
    assert links[0].write(b"update", b"cursor") and links[0].write(b"x", large, b"")
    assert transport.writes == writes + 2
    assert server_frames(transport.written[handshake:]) == [
        (0x82, b"update"), (0x82, b"cursor"), (0x82, b"x"), (0x82, large), (0x82, b"")
    ]
    protocol.pause_writing()  # the client stopped reading: nothing is written, the caller queues instead
    assert not links[0].write(b"a", b"b") and transport.writes == writes + 2
