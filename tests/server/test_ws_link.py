"""The room's direct link to its websockets (server/ws_link.py), under uvicorn as `redraft serve` runs it.

In-process, so the test can look at the event loop: a taken-over connection has no task of its own, reads
its messages as they arrive (also those sent before the room took it), and leaves the room when it closes.
"""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from server.config import ServerConfig
from server.protocol import SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, decode_message, encode_sync
from tests.support.inprocess import serving, text_of
from tests.support.processes import free_port


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
