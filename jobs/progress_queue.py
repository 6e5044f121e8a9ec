"""The progress dicts of one job not yet read, bounded by the text they hold, and the job as its consumer reads it.

Each progress dict is a whole snapshot (its `text` is all of the answer so far), so a remote engine's one a
token would make a consumer that stalls (a /v1 client that does not read its stream) hold the answer once
per token: quadratic memory. When the text held passes `max_chars`, the oldest snapshots are dropped (the
newest is always kept): it says all that they did. A consumer that keeps up sees every one.
"""

from __future__ import annotations

import asyncio
import collections

MAX_PENDING_CHARS = 1 << 20  # a diffusion model's burst of snapshots (4 canvases of 256 tokens) is ~10 kB


class ProgressQueue:
    def __init__(self, max_chars: int | None = None):
        self.max_chars = MAX_PENDING_CHARS if max_chars is None else max_chars
        self._pending: collections.deque[dict] = collections.deque()
        self._num_chars = 0
        self._changed = asyncio.Event()
        self.is_ended = False

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, progress: dict) -> None:
        self._pending.append(progress)
        self._num_chars += _size(progress)
        while len(self._pending) > 1 and self._num_chars > self.max_chars:
            self._num_chars -= _size(self._pending.popleft())
        self._changed.set()

    def end(self) -> None:
        """No more progress: the reader gets what is pending, then StopAsyncIteration."""
        self.is_ended = True
        self._changed.set()

    async def get(self) -> dict:
        """The oldest pending progress; raises StopAsyncIteration once ended and drained."""
        while not self._pending:
            if self.is_ended:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        progress = self._pending.popleft()
        self._num_chars -= _size(progress)
        return progress


def _size(progress: dict) -> int:
    # "text" and "committed" are the answer so far (tokens' pieces share their strings with it)
    return len(progress.get("text") or "") + len(progress.get("committed") or "")


class JobStream:
    """One job as its consumer reads it: iterate it for progress dicts (bounded, as above), await `result()`
    for the outcome dict, or the failure it was settled with raised. Whoever runs or relays the job pushes
    progress and settles it once (the remote engine's generation, the server's Redis job)."""

    def __init__(self, max_chars: int | None = None):
        self._progress = ProgressQueue(max_chars)
        self._outcome: asyncio.Future = asyncio.get_running_loop().create_future()

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        return await self._progress.get()

    async def result(self) -> dict:
        return await self._outcome

    @property
    def is_settled(self) -> bool:
        return self._outcome.done()

    def _push(self, progress: dict) -> None:
        self._progress.put(progress)

    def _settle(self, outcome: dict | BaseException) -> None:
        """The outcome, or the exception result() raises; the first settlement wins. Ends the progress."""
        if settle(self._outcome, outcome):
            self._progress.end()


def settle(future: asyncio.Future, outcome) -> bool:
    """Sets a job's outcome future to `outcome`, raised when it is an exception; False (and nothing changes)
    when it was settled already."""
    if future.done():
        return False
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
    return True
