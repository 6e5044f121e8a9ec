"""The bounded queue of progress snapshots (the remote engine's generations and the server's Redis jobs)."""

from __future__ import annotations

import anyio
import pytest

from jobs.progress_queue import JobStream, ProgressQueue


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


@pytest.mark.anyio
async def test_a_job_stream_ends_its_progress_when_settled_and_the_first_settlement_wins():
    job = JobStream()
    job._push({"text": "a"})
    job._settle({"status": "done", "text": "ab"})
    job._settle(RuntimeError("too late"))  # a second settlement (a late failure) changes nothing
    with anyio.fail_after(5):
        assert [progress["text"] async for progress in job] == ["a"]
        assert await job.result() == {"status": "done", "text": "ab"}
    assert job.is_settled


@pytest.mark.anyio
async def test_a_job_stream_settled_with_a_failure_raises_it_from_result():
    job = JobStream()
    job._settle(ValueError("the engine failed"))
    with anyio.fail_after(5):
        assert [progress async for progress in job] == []
        with pytest.raises(ValueError, match="the engine failed"):
            await job.result()
