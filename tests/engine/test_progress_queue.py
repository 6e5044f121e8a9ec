"""The bounded queue of progress snapshots (the remote engine's generations and the server's Redis jobs)."""

from __future__ import annotations

import anyio
import pytest

from engine.progress_queue import ProgressQueue


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def drain(queue) -> list[str]:
    with anyio.fail_after(5):
        return [(await queue.get())["text"] for _ in range(len(queue))]


@pytest.mark.anyio
async def test_a_stalled_reader_holds_the_newest_snapshots_within_the_bound():
    queue = ProgressQueue(max_chars=100)
    for i in range(1, 31):
        queue.put({"text": "x" * i, "committed": "x" * i})
    # 30, 29 and 28 twice over hold 174 characters > 100; 30 and 29 hold 118 > 100: only the newest is kept...
    assert await drain(queue) == ["x" * 30]
    queue.put({"text": "y" * 200})  # over the bound alone, and kept: the reader must get the latest state
    assert await drain(queue) == ["y" * 200]
    for i in range(10):  # a burst within the bound (a diffusion model's snapshots) is kept whole
        queue.put({"text": str(i)})
    assert await drain(queue) == [str(i) for i in range(10)]
    queue.end()
    with pytest.raises(StopAsyncIteration):
        await queue.get()
