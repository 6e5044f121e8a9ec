"""A client's send queue: bounded in frames and in bytes, released at once when the client is cut off."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from server.auth import OPEN_GRANT
from server.metrics import Metrics
from server.peer import Peer
from server.protocol import CLOSE_SLOW_CLIENT
from server.ratelimit import TokenBucket


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_queue_is_bounded_in_bytes_and_one_frame_may_take_it_past():
    unblock, closed = asyncio.Event(), []

    async def send(frame):  # a client that does not read: the first write never completes
        await unblock.wait()

    async def close(code, reason):
        closed.append((code, reason))

    peer = Peer(send, close, OPEN_GRANT, "test", 100, TokenBucket(1000, 1000), Metrics(), max_send_queue_bytes=1000)
    peer.start()
    with anyio.fail_after(5):
        peer.send(b"a" * 10)
        while peer.queued_bytes:  # the sender took it and is stuck writing it
            await asyncio.sleep(0)
        peer.send(b"b" * 600)
        peer.send(b"c" * 5000)  # a large document's sync step 2: 600 bytes wait, under the budget
        assert (peer.is_open, peer.queued_bytes) == (True, 5600)
        peer.send(b"d")  # past the budget now: cut off, and the queue's memory goes with it
        assert (peer.close_code, peer.queued_bytes) == (CLOSE_SLOW_CLIENT, 0)
        while not closed:
            await asyncio.sleep(0.01)
    assert closed == [(CLOSE_SLOW_CLIENT, "client fell 5601 bytes behind")]
    await peer.stop()
