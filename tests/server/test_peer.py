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


class Transport:
    """A transport's synchronous path that takes frames until told it is full."""

    def __init__(self):
        self.written: list[bytes] = []
        self.is_full = False

    def write_now(self, *frames: bytes) -> bool:
        if self.is_full:
            return False
        self.written.append(b"+".join(frames))  # one write: its frames joined by "+" here
        return True


def peer_on(transport: Transport) -> tuple[Peer, list[bytes], asyncio.Event]:
    """A peer writing to `transport`, whose awaited path (a client that does not read) holds every frame until
    the event is set, then appends it to the list."""
    awaited, release = [], asyncio.Event()

    async def send(frame):
        await release.wait()
        awaited.append(frame)

    async def close(code, reason):
        pass

    peer = Peer(send, close, OPEN_GRANT, "test", 100, TokenBucket(1000, 1000), Metrics(),
                max_send_queue_bytes=1000, write_now=transport.write_now)  # fmt: skip
    return peer, awaited, release


@pytest.mark.anyio
async def test_frames_go_straight_to_a_transport_that_takes_them_and_queue_in_order_when_it_does_not():
    transport = Transport()
    peer, awaited, release = peer_on(transport)
    with anyio.fail_after(5):
        peer.send(b"1")
        assert (transport.written, peer._sender) == ([b"1"], None)  # written at once, no task for it
        transport.is_full = True
        peer.send(b"2")
        await asyncio.sleep(0)  # the sender takes it and waits for the client
        transport.is_full = False  # room again, but "2" is still on its way: "3" must wait behind it
        peer.send(b"3")
        assert transport.written == [b"1"] and peer.queued_bytes == 1  # "2" in flight, "3" queued
        release.set()
        while peer._sender is not None:
            await asyncio.sleep(0)
        assert awaited == [b"2", b"3"]
        peer.send(b"4")  # drained: the direct path again
        assert transport.written == [b"1", b"4"]
        assert peer.sent_bytes == 4
    await peer.stop()


@pytest.mark.anyio
async def test_several_frames_go_in_one_write_when_they_can_and_queue_in_order_behind_a_waiting_one():
    transport = Transport()
    peer, awaited, release = peer_on(transport)
    with anyio.fail_after(5):
        peer.send_all([b"1", b"2"])
        peer.send_all([])
        assert transport.written == [b"1+2"] and peer.sent_bytes == 2
        transport.is_full = True
        peer.send_all([b"3", b"4"])  # each frame waits its turn, in order
        transport.is_full = False
        peer.send_all([b"5", b"6"])  # behind them, not around them
        assert transport.written == [b"1+2"]
        release.set()
        while peer._sender is not None:
            await asyncio.sleep(0)
        assert awaited == [b"3", b"4", b"5", b"6"] and peer.sent_bytes == 6
        peer.close(1000, "bye")
        peer.send_all([b"7"])
        assert transport.written == [b"1+2"] and awaited == [b"3", b"4", b"5", b"6"]
    await peer.stop()
