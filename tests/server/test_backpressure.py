"""A document whose store falls behind stops reading its clients until the store has caught up.

Updates are acknowledged to no one, so a client can send them faster than the store writes them; each waits
in memory until it is stored. One client sending 900 KB updates at the message rate allowed took the server
past 1.2 GB in 12 s. Now a connection that finds its document's backlog past --max-unstored-bytes is not read
until the backlog is down to half of that: TCP keeps the rest on the client's side, nothing is refused, and
every update lands. In-process under uvicorn, with the store's appends held at a gate, both as `redraft
serve` runs (the room's link, `ws_link`) and on plain ASGI receives.
"""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from server.config import ServerConfig
from server.protocol import SYNC_UPDATE, encode_sync
from tests.support.inprocess import serving, text_of
from tests.support.processes import free_port

MAX_UNSTORED = 64 << 10
UPDATES = 30


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=["link", "asgi"])
async def server(request, tmp_path):
    config = ServerConfig(port=free_port(), data_dir=tmp_path, max_unstored_bytes=MAX_UNSTORED)
    async with serving(config, None if request.param == "link" else "websockets-sansio") as (app, url):
        yield app, url


def gate_appends(app, monkeypatch) -> asyncio.Event:
    """Holds every store append until the returned event is set: a store that fell behind."""
    store = app.state.services.store
    append, gate = store.append, asyncio.Event()

    async def held(*args, **kwargs):
        await gate.wait()
        return await append(*args, **kwargs)

    monkeypatch.setattr(store, "append", held)
    return gate


async def within(seconds: float, predicate) -> None:
    """Returns once `predicate()` holds or `seconds` have passed; the caller asserts what it needs."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_a_backlogged_document_stops_reading_its_clients_and_loses_nothing(server, monkeypatch):
    app, url = server
    services = app.state.services
    async with connect(f"{url}/flood", max_size=None) as sender, connect(f"{url}/flood", max_size=None) as other:
        assert await text_of(sender, 5) == ""
        assert await text_of(other, 5) == ""
        room = services.rooms.loaded("flood")
        gate = gate_appends(app, monkeypatch)
        try:
            expected = await flood_behind_the_gate(services, room, sender, other, gate)
        finally:
            gate.set()  # a failure above must not leave connections paused: the server would not stop
    async with connect(f"{url}/flood", max_size=None) as late:  # stored, not only in the replica
        assert await text_of(late, 5) == expected
    assert (await services.store.load("flood")).size_bytes >= len(expected)


async def flood_behind_the_gate(services, room, sender, other, gate) -> str:
    doc = Doc(client_id=4242)
    text = doc.get("content", type=Text)
    chunk = 20_000
    for i in range(UPDATES):  # 600 KB: past the 64 KiB allowed unstored, and more than one read takes
        state = doc.get_state()
        text.insert(len(text), chr(ord("a") + i % 26) * chunk)
        await sender.send(encode_sync(SYNC_UPDATE, doc.get_update(state)))
    await within(5, lambda: room.is_backlogged)
    assert room.is_backlogged and services.metrics.reads_paused._value.get() == 1
    # The sender is not read while the store is behind: its step 1 waits unanswered, on its side of TCP.
    with pytest.raises(TimeoutError):
        await text_of(sender, 0.5)
    # A connection that adds nothing to the backlog is still read (a viewer, presence, a sync). What it gets
    # is what the room took before it stopped reading the sender (how much of the rest was read by then
    # depends on how TCP cut the stream): past the limit, and not all of it.
    expected = "".join(chr(ord("a") + i % 26) * chunk for i in range(UPDATES))
    taken = await text_of(other, 5)
    assert MAX_UNSTORED < len(taken) < len(expected) and expected.startswith(taken)
    assert room.unstored_bytes > len(taken)  # every update the room took waits in memory: none was refused
    assert services.metrics.reads_paused._value.get() == 1

    gate.set()  # the store catches up: reading resumes, and the step 1 sent meanwhile is answered
    assert await text_of(sender, 5) == expected
    assert await text_of(other, 5) == expected
    # The last append may still be on its way (the answers above come from the replica).
    await within(5, lambda: room.unstored_bytes == 0)
    assert room.unstored_bytes == 0 and not room.is_backlogged
    return expected
