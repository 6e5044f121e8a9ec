"""The job spec's one validation: every field it refuses, with the words it refuses it in, and the boundaries."""

from __future__ import annotations

import pytest

from jobs.spec import MAX_STEPS, MAX_STOP_CHARS, MAX_STOPS, RedraftSpec, RequestError, check_steps


def spec(**fields) -> RedraftSpec:
    return RedraftSpec.from_dict({"id": "j", "kind": "complete", "prompt": "p", **fields})


@pytest.mark.parametrize("steps", [None, 1, 2, MAX_STEPS])
def test_steps_from_one_to_the_maximum_pass(steps):
    assert spec(steps=steps).steps == steps


@pytest.mark.parametrize("steps", [0, -1, MAX_STEPS + 1, True, False, 2.0, "4"])
def test_steps_outside_the_range_or_not_integers_are_refused(steps):
    # The editor's HTTP API says the same words (server/redrafts/request.py), and the service's 1-256 rule is the
    # spec's: a spec that passes one passes the other.
    with pytest.raises(RequestError, match=rf"^steps must be an integer from 1 to {MAX_STEPS}$"):
        spec(steps=steps)
    with pytest.raises(RequestError):
        check_steps(steps)


@pytest.mark.parametrize("name", ["max_canvases", "max_tokens"])
@pytest.mark.parametrize("value", [0, -3, True, 1.5, "2"])
def test_budgets_must_be_positive_integers(name, value):
    with pytest.raises(RequestError, match=rf"^{name} must be a positive integer, not {value!r}$".replace("(", r"\(")):
        spec(**{name: value})


@pytest.mark.parametrize("name", ["max_canvases", "max_tokens"])
def test_a_budget_of_one_passes(name):
    assert getattr(spec(**{name: 1}), name) == 1


@pytest.mark.parametrize("seed", [0, -1, 2**64, 12345])
def test_any_integer_seed_passes(seed):
    # The /v1 API sends negative 64-bit seeds; the engine takes them modulo 2**63.
    assert spec(seed=seed).seed == seed


@pytest.mark.parametrize("seed", [True, 1.0, "1", None])
def test_a_seed_that_is_no_integer_is_refused(seed):
    with pytest.raises(RequestError, match=r"^seed must be an integer, not "):
        spec(seed=seed)


@pytest.mark.parametrize("name", ["passage", "instruction", "before", "after", "prompt"])
def test_text_fields_must_be_text(name):
    with pytest.raises(RequestError, match=rf"^{name} must be text$"):
        spec(**{name: 3})


def test_the_kind_is_one_of_the_five():
    with pytest.raises(RequestError, match=r"^kind must be one of rewrite, fill, continue, chat, complete, not 'x'$"):
        spec(kind="x")


def test_a_spec_is_a_json_object_with_an_id_and_a_kind():
    with pytest.raises(RequestError, match=r"^a redraft spec is a JSON object$"):
        RedraftSpec.from_dict(["id", "kind"])
    with pytest.raises(RequestError, match=r"^bad redraft spec: .*'kind'"):
        RedraftSpec.from_dict({"id": "j"})


def test_unknown_fields_are_ignored_and_the_spec_round_trips():
    parsed = spec(steps=3, stop=["\n"], extra="kept out")
    assert "extra" not in parsed.to_dict()
    assert RedraftSpec.from_dict(parsed.to_dict()) == parsed


@pytest.mark.parametrize("stop, message", [
    ("x", rf"^stop must be a list of at most {MAX_STOPS} strings$"),
    (["a"] * (MAX_STOPS + 1), rf"^stop must be a list of at most {MAX_STOPS} strings$"),
    ([""], r"^each stop string must be non-empty text$"),
    ([3], r"^each stop string must be non-empty text$"),
    (["x" * (MAX_STOP_CHARS + 1)], rf"^each stop string must be at most {MAX_STOP_CHARS} characters$"),
])
def test_bad_stops_are_refused(stop, message):
    with pytest.raises(RequestError, match=message):
        spec(stop=stop)


def test_stops_at_their_limits_pass():
    stops = ["x" * MAX_STOP_CHARS] * MAX_STOPS
    assert spec(stop=stops).stop == stops


@pytest.mark.parametrize("messages, message", [
    (None, r"^a chat needs messages"),
    ([], r"^a chat needs messages"),
    ([{"role": "user"}], r"^messages\[0\] must be an object with exactly role and content$"),
    ([{"role": "tool", "content": "x"}], r"^messages\[0\]\.role must be one of system, user, assistant, not 'tool'$"),
    ([{"role": "user", "content": 1}], r"^messages\[0\]\.content must be text$"),
])
def test_bad_chats_are_refused(messages, message):
    with pytest.raises(RequestError, match=message):
        RedraftSpec.from_dict({"id": "c", "kind": "chat", "messages": messages})


def test_an_editor_spec_gets_the_task_its_kind_and_instruction_imply():
    assert RedraftSpec.from_dict({"id": "r", "kind": "rewrite", "passage": "a"}).task == "rewrite"
    assert RedraftSpec.from_dict({"id": "r", "kind": "rewrite", "instruction": "be brief"}).task == "instruct"
    assert RedraftSpec.from_dict({"id": "f", "kind": "fill"}).task == "fill"
    assert spec().task == ""  # the API's kinds have none


@pytest.mark.parametrize("fields, message", [
    ({"kind": "rewrite", "task": 3}, r"^task must be text$"),
    ({"kind": "rewrite", "task": "poem"}, r"^task must be one of rewrite, shorten, expand, fix, instruct, continue, fill"),
    ({"kind": "fill", "task": "fix"}, r"^task fix is a rewrite, not a fill$"),
    ({"kind": "chat", "messages": [{"role": "user", "content": "x"}], "task": "fix"}, r"^a chat request has no task"),
])
def test_bad_tasks_are_refused(fields, message):
    with pytest.raises(RequestError, match=message):
        RedraftSpec.from_dict({"id": "t", **fields})


def test_the_editor_api_refuses_steps_in_the_specs_words():
    # The service's HTTP 400 names the same rule with the same text as before the spec held it.
    pytest.importorskip("pycrdt")
    from server.redrafts.request import RedraftError, parse_options

    assert parse_options({"steps": MAX_STEPS})[5] == MAX_STEPS
    for steps in (0, MAX_STEPS + 1, True):
        with pytest.raises(RedraftError) as refused:
            parse_options({"steps": steps})
        assert (refused.value.status, refused.value.code, refused.value.detail) == (
            400, "bad_request", "steps must be an integer from 1 to 256")
