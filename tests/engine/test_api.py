"""The async Engine facade: snapshots as an async iterator, results, cancellation, failures."""

from __future__ import annotations

import anyio
import pytest

from engine.api import Engine, EngineConfig
from engine.runtime.generate import Request, RequestError, generate
from engine.weights.checkpoint import load_checkpoint
from tests.engine.runtime.test_generate import prompt_of
from tests.engine.tiny import TinySpec


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def native(checkpoint):
    return load_checkpoint(checkpoint(TinySpec()))


@pytest.mark.anyio
async def test_stream_and_result(native):
    engine = Engine(native, EngineConfig(max_batch=2, max_len=256))
    try:
        with anyio.fail_after(30):
            request = Request(prompt_of(6), seed=3, max_new_tokens=16, max_denoising_steps=4)
            generation = engine.submit(request)
            steps = [snapshot.step async for snapshot in generation]
            result = await generation.result()
        assert steps == [1, 2, 3, 4]
        (expected,) = generate(native.model, [request], native.generation)
        assert result.token_ids == expected.token_ids and result.status == "done"
    finally:
        await engine.close()


@pytest.mark.anyio
async def test_cancel_and_keep_serving(native):
    engine = Engine(native, EngineConfig(max_batch=2, max_len=256))
    try:
        with anyio.fail_after(30):
            long = engine.submit(Request(prompt_of(6), seed=1, max_new_tokens=48, max_denoising_steps=40))
            async for snapshot in long:
                if snapshot.step == 2:
                    long.cancel()
            assert (await long.result()).status == "cancelled"
            short = engine.submit(Request(prompt_of(5), seed=2, max_new_tokens=16, max_denoising_steps=3))
            assert (await short.result()).status == "done"
    finally:
        await engine.close()


@pytest.mark.anyio
async def test_bad_requests_fail_at_submit(native):
    engine = Engine(native, EngineConfig(max_batch=1, max_len=64))
    try:
        with pytest.raises(RequestError):
            engine.submit(Request(prompt_of(60), max_new_tokens=32))
        with pytest.raises(RequestError):
            engine.submit(Request([], max_new_tokens=16))
        assert engine.queue_length == 0
    finally:
        await engine.close()


@pytest.mark.anyio
async def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(native, monkeypatch):
    engine = Engine(native, EngineConfig(max_batch=2, max_len=256))
    decode = native.model.decode
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return decode(*args, **kwargs)

    monkeypatch.setattr(native.model, "decode", flaky)
    try:
        with anyio.fail_after(30):
            doomed = engine.submit(Request(prompt_of(6), seed=1, max_new_tokens=16, max_denoising_steps=5))
            with pytest.raises(RuntimeError, match="out of memory"):
                await doomed.result()
            fine = engine.submit(Request(prompt_of(6), seed=1, max_new_tokens=16, max_denoising_steps=5))
            assert (await fine.result()).status == "done"
    finally:
        await engine.close()


@pytest.mark.anyio
async def test_close_settles_what_is_in_flight(native):
    engine = Engine(native, EngineConfig(max_batch=1, max_len=256))
    with anyio.fail_after(30):
        running = engine.submit(Request(prompt_of(6), seed=1, max_new_tokens=48, max_denoising_steps=40))
        waiting = engine.submit(Request(prompt_of(6), seed=2, max_new_tokens=48, max_denoising_steps=40))
        await running.__anext__()  # a snapshot: it holds the engine's one row, so `waiting` waits
        await engine.close()
        assert (await running.result()).status == "cancelled"
        assert (await waiting.result()).status == "cancelled"
        with pytest.raises(RuntimeError, match="shutting down"):
            engine.submit(Request(prompt_of(6)))
