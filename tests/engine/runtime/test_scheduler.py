"""Continuous batching: requests that join, share steps and leave get exactly what they get alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.runtime.generate import ContextTooLongError, Request, generate
from engine.runtime.scheduler import Job, Scheduler
from engine.text.slots import SlotChoice
from engine.text.tokenizer import TURN_END_ID
from engine.weights.checkpoint import load_checkpoint
from tests.engine.copying import make_copying
from tests.engine.runtime.test_generate import prompt_of
from tests.engine.tiny import TinySpec


class Recorder:
    def __init__(self):
        self.snapshots, self.outcome = [], None

    def job(self, request: Request) -> Job:
        return Job(request, self.snapshots.append, self._done)

    def _done(self, outcome):
        assert self.outcome is None, "a job finished twice"
        self.outcome = outcome


def run_until_idle(scheduler: Scheduler, max_steps: int = 1000) -> None:
    for _ in range(max_steps):
        if not scheduler.has_work:
            return
        scheduler.step()
    raise AssertionError("the scheduler never went idle")


@pytest.fixture(scope="module")
def native(checkpoint):
    return load_checkpoint(checkpoint(TinySpec()))


def alone(native, request: Request):
    (result,) = generate(native.model, [request], native.generation)
    return result


REQUESTS = [
    Request(prompt_of(5), seed=1, max_new_tokens=32, max_denoising_steps=6),
    Request(prompt_of(17, offset=9), seed=2, max_new_tokens=16, max_denoising_steps=9),
    Request(prompt_of(30, offset=4), seed=3, max_new_tokens=48, max_denoising_steps=4),
    Request(prompt_of(8, offset=11), seed=4, max_new_tokens=16, max_denoising_steps=7),
    Request(prompt_of(12, offset=6), seed=5, max_new_tokens=32, max_denoising_steps=5),
]


def test_requests_submitted_together_equal_each_alone(native):
    scheduler = Scheduler(native.model, native.generation, max_batch=4, max_len=256)
    recorders = [Recorder() for _ in REQUESTS]
    for recorder, request in zip(recorders, REQUESTS, strict=True):
        scheduler.submit(recorder.job(request))
    scheduler.step()
    assert scheduler.num_running == 4 and len(scheduler.waiting) == 1  # the fifth waits for a free row
    run_until_idle(scheduler)
    for recorder, request in zip(recorders, REQUESTS, strict=True):
        expected = alone(native, request)
        assert recorder.outcome.status == "done"
        assert (recorder.outcome.token_ids, recorder.outcome.steps) == (expected.token_ids, expected.steps)


def test_requests_joining_mid_flight_equal_each_alone(native):
    scheduler = Scheduler(native.model, native.generation, max_batch=3, max_len=256)
    recorders = [Recorder() for _ in REQUESTS]
    for i, (recorder, request) in enumerate(zip(recorders, REQUESTS, strict=True)):
        scheduler.submit(recorder.job(request))
        for _ in range(i + 2):  # the others are mid-canvas, or between canvases, when it joins
            scheduler.step()
    run_until_idle(scheduler)
    for recorder, request in zip(recorders, REQUESTS, strict=True):
        assert recorder.outcome.token_ids == alone(native, request).token_ids


def test_snapshots_follow_each_request(native):
    # No end token: random weights may draw one anywhere, and this test needs the second canvas
    generation = native.generation.replace(eos_token_ids=())
    scheduler = Scheduler(native.model, generation, max_batch=2, max_len=256)
    recorder = Recorder()
    request = Request(prompt_of(6), seed=7, max_new_tokens=32, max_denoising_steps=5)
    scheduler.submit(recorder.job(request))
    run_until_idle(scheduler)
    snaps = recorder.snapshots
    # Random weights never stop early: 5 steps on each of two canvases.
    assert [(s.canvas_index, s.step) for s in snaps] == [(c, i) for c in (0, 1) for i in range(1, 6)]
    assert all(s.max_steps == 5 and len(s.token_ids) == 16 == len(s.entropy) == len(s.accepted) for s in snaps)
    assert [s.stopped for s in snaps] == [False] * 4 + [True] + [False] * 4 + [True]
    assert [s.finished for s in snaps] == [False] * 9 + [True]
    assert snaps[4].token_ids + snaps[9].token_ids == recorder.outcome.token_ids


def test_cancelled_job_frees_its_row_and_spares_the_others(native):
    scheduler = Scheduler(native.model, native.generation, max_batch=2, max_len=256)
    keep, drop, late = Recorder(), Recorder(), Recorder()
    scheduler.submit(keep.job(REQUESTS[0]))
    dropped = drop.job(REQUESTS[1])
    scheduler.submit(dropped)
    scheduler.submit(late.job(REQUESTS[3]))
    scheduler.step()
    scheduler.step()
    dropped.cancellation.set()
    scheduler.step()
    assert drop.outcome.status == "cancelled" and len(drop.snapshots) == 2
    assert scheduler.rows[1] is late_job_of(scheduler, REQUESTS[3])  # the freed row went to the waiting job
    run_until_idle(scheduler)
    assert keep.outcome.token_ids == alone(native, REQUESTS[0]).token_ids
    assert late.outcome.token_ids == alone(native, REQUESTS[3]).token_ids


def late_job_of(scheduler, request):
    return next(job for job in scheduler.rows if job is not None and job.request is request)


def test_requests_beyond_the_cache_are_refused_at_submit(native):
    scheduler = Scheduler(native.model, native.generation, max_batch=2, max_len=64)
    with pytest.raises(ContextTooLongError, match="exceeds"):
        scheduler.submit(Recorder().job(Request(prompt_of(40), max_new_tokens=48)))
    assert not scheduler.has_work


def test_an_engine_error_fails_the_batch_and_the_next_request_runs(native):
    scheduler = Scheduler(native.model, native.generation, max_batch=2, max_len=256)
    first, second = Recorder(), Recorder()
    scheduler.submit(first.job(REQUESTS[0]))
    scheduler.step()
    scheduler.fail_all(RuntimeError("CUDA out of memory"))
    assert isinstance(first.outcome, RuntimeError) and scheduler.num_running == 0
    scheduler.submit(second.job(REQUESTS[1]))
    run_until_idle(scheduler)
    assert second.outcome.token_ids == alone(native, REQUESTS[1]).token_ids


def run_alone(native, request: Request, **kwargs):
    scheduler = Scheduler(native.model, native.generation, **kwargs)
    recorder = Recorder()
    scheduler.submit(recorder.job(request))
    run_until_idle(scheduler)
    return recorder.outcome


def test_fixed_shapes_batch_equals_alone_and_uses_the_smallest_bucket(native):
    """The CUDA-graph path run eagerly: every bucket reads the whole cache through static masks."""
    options = {"max_batch": 4, "max_len": 256, "fixed_shapes": True}
    scheduler = Scheduler(native.model, native.generation, **options)
    assert scheduler.graphs.sizes == [1, 2, 4]
    recorders = [Recorder() for _ in REQUESTS]
    for i, (recorder, request) in enumerate(zip(recorders, REQUESTS, strict=True)):
        scheduler.submit(recorder.job(request))
        scheduler.step()
        if i == 0:
            assert scheduler.graphs.last_bucket == 1  # a lone request runs at batch 1
            # every bucket built at the first step, the largest first (its capture sizes the shared pool)
            assert list(scheduler.graphs._replays) == [4, 2, 1]
    run_until_idle(scheduler)
    for recorder, request in zip(recorders, REQUESTS, strict=True):
        expected = run_alone(native, request, **options)
        assert (recorder.outcome.token_ids, recorder.outcome.steps) == (expected.token_ids, expected.steps)


def test_fixed_shapes_match_windowed_reads_on_these_requests(native):
    """Reading the whole cache instead of the window changes float sums in the last bits at most;
    on these requests (fp32) the tokens agree with generate()."""
    for request in REQUESTS[:3]:
        outcome = run_alone(native, request, max_batch=2, max_len=256, fixed_shapes=True)
        assert outcome.token_ids == alone(native, request).token_ids


def test_fixed_shapes_refuse_the_reference_rng(native):
    with pytest.raises(ValueError, match="native RNG"):
        Scheduler(native.model, native.generation, max_batch=2, max_len=64, rng="reference", fixed_shapes=True)


# --- passage-started canvases ------------------------------------------------------------------------------

STARTED = [
    replace(REQUESTS[0], init_ids=prompt_of(20, offset=70)),  # canvas 0 from it, canvas 1 from 4 tokens and pad
    REQUESTS[1],
    replace(REQUESTS[2], init_ids=[90] * 5),  # canvas 0 from it, canvases 1 and 2 from noise
    REQUESTS[3],
    replace(REQUESTS[4], init_ids=prompt_of(32, offset=40)),
]


@pytest.mark.parametrize("fixed_shapes", [False, True], ids=["eager", "fixed-shapes"])
def test_init_rows_joining_mid_flight_equal_each_alone(native, fixed_shapes):
    """Rows that start from given tokens are admitted, start their next canvases and leave like any other,
    on the eager path and on the CUDA-graph path's fixed shapes (run eagerly here), next to noise rows."""
    options = {"max_batch": 3, "max_len": 256, "fixed_shapes": fixed_shapes}
    scheduler = Scheduler(native.model, native.generation, **options)
    recorders = [Recorder() for _ in STARTED]
    for i, (recorder, request) in enumerate(zip(recorders, STARTED, strict=True)):
        scheduler.submit(recorder.job(request))
        for _ in range(i + 2):
            scheduler.step()
    run_until_idle(scheduler)
    for recorder, request in zip(recorders, STARTED, strict=True):
        expected = run_alone(native, request, **options)
        assert (recorder.outcome.token_ids, recorder.outcome.steps) == (expected.token_ids, expected.steps)
        if not fixed_shapes:
            assert recorder.outcome.token_ids == alone(native, request).token_ids  # as generate() gives it
    assert recorders[0].outcome.token_ids != run_alone(native, REQUESTS[0], **options).token_ids


def test_a_copying_model_on_fixed_shapes_gives_back_its_passage(checkpoint):
    passage = prompt_of(40, offset=60)
    init = [*passage, TURN_END_ID]
    native = load_checkpoint(checkpoint(TinySpec()))  # its own copy: make_copying rewrites the weights
    make_copying(native.model, [*init, native.args.pad_token_id])
    scheduler = Scheduler(native.model, native.generation, max_batch=2, max_len=256, fixed_shapes=True)
    copy, other = Recorder(), Recorder()
    scheduler.submit(other.job(Request(prompt_of(5), seed=2, max_new_tokens=16, max_denoising_steps=4)))
    scheduler.step()
    scheduler.submit(copy.job(Request(prompt_of(9), seed=4, max_new_tokens=48, init_ids=init)))
    run_until_idle(scheduler)
    assert copy.outcome.token_ids == init + [0] * 7
    assert copy.outcome.steps == [2, 2, 2]
    assert [s.token_ids for s in copy.snapshots if s.step == 1] == [init[:16], init[16:32], init[32:] + [0] * 7]


@pytest.mark.parametrize("fixed_shapes", [False, True], ids=["eager", "fixed-shapes"])
def test_choice_rows_joining_mid_flight_equal_each_alone(native, fixed_shapes):
    """A fix's choices are started, scored and committed per row by the scheduler as generate() does, next to
    rows without: the commit encodes the chosen canvas, and the next canvas's choices are its own."""
    passage = prompt_of(20, offset=70)
    choices = (SlotChoice(2, (tuple(passage[2:4]), (9, 0)), (0.0, 0.0)),
               SlotChoice(17, ((passage[17],), (11,)), (0.0, 0.0)))
    requests = [replace(STARTED[0], choices=choices), REQUESTS[1], replace(STARTED[0], seed=9, choices=())]
    options = {"max_batch": 2, "max_len": 256, "fixed_shapes": fixed_shapes}
    scheduler = Scheduler(native.model, native.generation, **options)
    recorders = [Recorder() for _ in requests]
    for recorder, request in zip(recorders, requests, strict=True):
        scheduler.submit(recorder.job(request))
        scheduler.step()
    run_until_idle(scheduler)
    for recorder, request in zip(recorders, requests, strict=True):
        expected = alone(native, request)
        assert (recorder.outcome.token_ids, recorder.outcome.steps) == (expected.token_ids, expected.steps)
    first = recorders[0].outcome.token_ids
    assert first[:2] + first[4:17] + first[18:20] == passage[:2] + passage[4:17] + passage[18:20]
    assert recorders[2].outcome.token_ids[:20] == passage  # no choices: the passage as it stands
    watched = [snapshot.token_ids for snapshot in recorders[0].snapshots if snapshot.canvas_index == 0]
    assert watched and all(shown[:2] + shown[4:] == passage[:2] + passage[4:16] for shown in watched)  # settled
