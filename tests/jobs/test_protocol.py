"""The Redis job protocol's names and shapes, as both the server's backend and the worker read them."""

from __future__ import annotations

import json

import pytest

from jobs import protocol
from jobs.cancel import Cancellation


def test_keys_are_the_ones_deployed_workers_and_servers_share():
    # Changing one strands every running worker or server of the other version: these strings are the wire.
    assert protocol.jobs_key("rd") == "rd:engine:jobs"
    assert protocol.reply_key("rd", "j1") == "rd:engine:job:j1"
    assert protocol.cancel_key("rd", "j1") == "rd:engine:cancel:j1"
    assert protocol.liveness_key("rd", "gpu-0") == "rd:engine:worker:gpu-0"
    assert protocol.workers_key("rd") == "rd:engine:workers"
    assert protocol.GROUP == "workers"
    assert protocol.EVENTS == ("progress", "retry", "outcome", "failed")


def test_a_job_entry_holds_the_id_the_spec_the_reply_stream_and_when():
    entry = protocol.job_entry("j1", '{"id": "j1"}', "rd:engine:job:j1", 1700000000.12345)
    assert entry == {"id": "j1", "spec": '{"id": "j1"}', "reply": "rd:engine:job:j1", "submitted_at": "1700000000.123"}


def test_a_reply_entry_reads_back_as_the_worker_wrote_it():
    entry = protocol.reply_entry(protocol.EVENT_PROGRESS, 2, {"step": 3})
    as_redis_returns_it = {key.encode(): str(value).encode() for key, value in entry.items()}
    assert protocol.read_reply(as_redis_returns_it) == ("progress", 2, {"step": 3})
    assert protocol.read_reply({b"event": b"outcome", b"data": b"{}"}) == ("outcome", 1, {})  # no attempt: the first


@pytest.mark.parametrize("fields, error", [
    ({b"attempt": b"1", b"data": b"{}"}, KeyError),
    ({b"event": b"progress", b"attempt": b"1"}, KeyError),
    ({b"event": b"progress", b"attempt": b"x", b"data": b"{}"}, ValueError),
    ({b"event": b"progress", b"data": b"{"}, ValueError),
])
def test_a_malformed_reply_raises_what_the_reader_catches(fields, error):
    with pytest.raises(error):
        protocol.read_reply(fields)


def test_a_retry_is_a_progress_with_nothing_written():
    assert protocol.retry_progress(2, "gpu-1") == {
        "step": 0, "max_steps": 0, "canvas_index": 0, "text": "", "tokens": [], "stopped": False, "finished": False,
        "retry": True, "attempt": 2, "worker": "gpu-1",
    }


def test_shapes_add_what_an_engine_knows():
    assert protocol.progress_snapshot(1, 4, 0, "ab", [["ab", 1.0]], False, False, committed="") == {
        "step": 1, "max_steps": 4, "canvas_index": 0, "text": "ab", "tokens": [["ab", 1.0]], "stopped": False,
        "finished": False, "committed": "",
    }
    assert protocol.cancelled_outcome() == {"status": "cancelled", "text": "", "steps": [], "tokens": 0, "timings": {}}
    assert json.loads(json.dumps(protocol.job_outcome("done", "x", [3], 1, {"denoise_s": 0.5}, complete=True))) == {
        "status": "done", "text": "x", "steps": [3], "tokens": 1, "timings": {"denoise_s": 0.5}, "complete": True}


def test_describe_says_out_of_memory_in_a_persons_words():
    assert protocol.describe(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\ndetails")) == (
        "the GPU ran out of memory (CUDA out of memory. Tried to allocate 2 GiB); try fewer steps or a shorter passage")
    assert protocol.describe(ValueError("bad")) == "bad"
    assert protocol.describe(KeyError()) == "KeyError"


def test_a_cancellation_is_passed_on_once():
    cancellation = Cancellation()
    assert not cancellation.is_set
    assert cancellation.set() is True
    assert cancellation.set() is False  # already asked: the Redis job writes its cancel key once
    assert cancellation.is_set
