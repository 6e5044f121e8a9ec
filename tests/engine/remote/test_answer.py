"""The streamed answer and its line reader cost time linear in the answer however a server cuts it up, and
cut exactly where the whole text, read at once, would be cut."""

from __future__ import annotations

import random

import anyio
import pytest

from engine.remote.answer import AnswerText
from engine.remote.stream import lines
from engine.runtime.redrafts import OutputLimit


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("seed", range(20))
def test_stops_found_on_the_tail_cut_where_the_whole_text_is_cut(seed):
    rng = random.Random(seed)
    print(f"seed {seed}")
    alphabet = "abc"  # few letters: stop strings begin, break off and complete across chunks often
    stops = tuple("".join(rng.choices(alphabet, k=rng.randint(1, 7))) for _ in range(rng.randint(1, 4)))
    limit = OutputLimit(None, stops)
    whole = "".join(rng.choices(alphabet, k=200))
    answer, start = AnswerText(limit), 0
    while start < len(whole):
        end = start + rng.randint(1, 5)
        if answer.append(whole[start:end]):
            break
        start = end
    expected, _ = limit.final(whole)  # the earliest stop in the whole text, or all of it
    assert (answer.text, answer.num_chars) == (expected, len(expected))


@pytest.mark.anyio
async def test_a_long_line_a_byte_a_read_is_read_in_linear_time():
    line = b"data: " + b"y" * 1_000_000
    data = line + b"\r\n\r\n"

    async def one_byte_reads():
        for i in range(len(data)):
            if i % 65536 == 0:
                await anyio.sleep(0)  # a point where the deadline below can fire
            yield data[i : i + 1]

    # 0.5 s here; copying the buffer on each read, as before, took minutes (5 * 10**11 bytes copied)
    with anyio.fail_after(30):
        assert [text async for text in lines(one_byte_reads(), 2 << 20)] == [line.decode(), ""]
