"""The OpenAI-compatible API (/v1) through the official `openai` client, against a real `redraft serve --engine
local` with the shipped redraft-small model on the CPU: models, chat and completions with and without
streaming, usage, the snapshot extension only when asked, errors in OpenAI's shape, engine tokens, and a
client that leaves cancelling its job."""

from __future__ import annotations

import json

import anyio
import httpx
import openai
import pytest

from redraft.cli import main as cli_main
from server.auth import mint_engine_token, mint_token, verify_engine_token
from server.config import ServerConfig
from server.openai_stream import Reply
from server.redrafts.backends import EngineFailed
from tests.support.processes import RedisServer, RedraftWorker, ServerProcess, wait_until

SECRET = "e" * 32
MODEL = "redraft-small"
CONTEXT = 1024  # redraft-small's context: the prompt and the output
# redraft-small writes two canvases of 128 (some 3 s on one CPU thread) for this prompt and seed before its
# EOS: long enough to see the text arrive a canvas at a time, and to leave while it runs.
LONG = {"prompt": "The history of the city", "seed": 2, "max_tokens": 640}
HELLO = [{"role": "user", "content": "Say hello."}]
# Tests share one server; its per-address rate is raised so they do not spend each other's budget.
OPEN_ARGS = ("--redraft-user-per-min", "6000", "--redraft-user-burst", "1000", "--openai-max-body-bytes", "65536")


def start(tmp_path_factory, name: str, *args: str, engine: str = "local") -> ServerProcess:
    extra = ("--engine", engine, "--engine-device", "cpu", *args)
    # One intra-op thread: a small model gains nothing from more on a shared machine (tests/support/torch_session.py).
    server = ServerProcess(tmp_path_factory.mktemp(name), extra_args=extra, env={"OMP_NUM_THREADS": "1"}).start()
    if engine != "off":
        wait_until(lambda: health(server)["engine"]["status"] == "ready", 60, "the engine to load")
    return server


def health(server: ServerProcess) -> dict:
    return httpx.get(server.http_url + "/healthz", timeout=5).json()


_clients: list[openai.OpenAI] = []


def client(server: ServerProcess, api_key: str = "unused") -> openai.OpenAI:
    # No retries: a 429 or 503 must reach the test, not be retried away.
    made = openai.OpenAI(base_url=server.http_url + "/v1", api_key=api_key, max_retries=0, timeout=60)
    _clients.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients():
    """Each test's clients are closed when it ends: a socket left to the garbage collector raises a
    ResourceWarning (an error here) in whichever test happens to be running then."""
    yield
    while _clients:
        _clients.pop().close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start(tmp_path_factory, "open", *OPEN_ARGS)
    yield server
    server.stop()


def test_models_lists_the_loaded_model_with_its_context(server):
    models = client(server).models.list()
    assert [(model.id, model.owned_by, model.model_extra["max_model_len"]) for model in models.data] == [
        (MODEL, "redraft", CONTEXT)]
    assert client(server).models.retrieve(MODEL).id == MODEL


def test_chat_streamed_deltas_join_into_the_text_of_the_same_request_unstreamed(server):
    api = client(server)
    whole = api.chat.completions.create(model=MODEL, messages=HELLO, seed=2, max_tokens=64)
    (choice,) = whole.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert whole.usage.prompt_tokens > 0 and 0 < whole.usage.completion_tokens <= 64
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    chunks = list(api.chat.completions.create(model=MODEL, messages=HELLO, seed=2, max_tokens=64, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == choice.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_completions_stream_each_canvas_as_it_is_decided(server):
    api = client(server)
    whole = api.completions.create(model=MODEL, **LONG)
    (choice,) = whole.choices
    assert whole.object == "text_completion" and choice.finish_reason == "stop"
    chunks = list(api.completions.create(model=MODEL, stream=True, **LONG))
    texts = [c.choices[0].text for c in chunks if c.choices[0].text]
    assert "".join(texts) == choice.text
    assert len(texts) >= 2, texts  # the first canvas arrived before the model had written the last
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.model_extra.get("redraft") is None for c in chunks)


def test_max_tokens_and_stop_cut_the_answer(server):
    api = client(server)
    cut = api.completions.create(model=MODEL, max_tokens=5, **{k: LONG[k] for k in ("prompt", "seed")})
    assert (cut.choices[0].finish_reason, cut.usage.completion_tokens) == ("length", 5)
    full = api.completions.create(model=MODEL, **LONG).choices[0].text
    stop = full[len(full) // 2 :][:3]  # text from the middle of the answer: it must end before it
    stopped = api.completions.create(model=MODEL, stop=[stop], **LONG)
    assert stopped.choices[0].text == full[: full.index(stop)] and stopped.choices[0].finish_reason == "stop"


def test_denoising_snapshots_ride_on_extra_chunks_only_when_asked(server):
    stream = client(server).chat.completions.create(
        model=MODEL, messages=HELLO, seed=2, max_tokens=64, stream=True, extra_body={"redraft_snapshots": True})
    chunks = list(stream)
    snapshots = [c.model_extra["redraft"] for c in chunks if not c.choices]
    assert snapshots and snapshots[0]["step"] == 1 and snapshots[0]["canvas_index"] == 0
    assert all(1 <= s["step"] <= s["max_steps"] and isinstance(s["text"], str) for s in snapshots)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert snapshots[-1]["text"].startswith(text)  # the last snapshot is the canvas the answer was cut from
    # the steps extension sets the denoising steps per canvas, as the editor's quality setting does
    stream = client(server).chat.completions.create(
        model=MODEL, messages=HELLO, seed=2, max_tokens=64, stream=True,
        extra_body={"redraft_snapshots": True, "redraft_steps": 3})
    assert {c.model_extra["redraft"]["max_steps"] for c in stream if not c.choices} == {3}


@pytest.mark.parametrize("fields, param, message", [
    ({"n": 2}, "n", "n must be 1"),
    ({"messages": []}, "messages", "messages must be a non-empty list"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "must be one of system, developer"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]", "reads text only"),
    ({"max_tokens": 0}, "max_tokens", "max_tokens must be an integer of at least 1"),
    ({"max_tokens": CONTEXT}, "max_tokens", f"context is {CONTEXT} tokens"),
    ({"temperature": 3}, "temperature", "temperature must be a number from 0 to 2"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4 strings"),
    ({"logprobs": True}, "logprobs", "logprobs are not supported"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream is true"),
    ({"seed": "x"}, "seed", "seed must be a 64-bit integer"),
    ({"extra_body": {"redraft_steps": 0}}, "redraft_steps", "redraft_steps must be an integer from 1 to 256"),
    ({"messages": [{"role": "user", "content": "word " * 1500}]}, None, "the context of 1024 tokens"),
])
def test_bad_fields_are_refused_with_the_field_named(server, fields, param, message):
    with pytest.raises(openai.BadRequestError, match=message) as caught:
        client(server).chat.completions.create(**{"model": MODEL, "messages": HELLO, **fields})
    assert caught.value.body["param"] == param
    assert caught.value.body["type"] == "invalid_request_error"


def test_ignored_sampling_knobs_and_unknown_fields_are_accepted(server):
    answer = client(server).chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=8, temperature=0.2, top_p=0.9, presence_penalty=1, user="me",
        extra_body={"some_vendor_field": {"x": 1}})
    assert answer.choices[0].message.content is not None


def test_other_refusals_have_openai_shape_and_status(server):
    with pytest.raises(openai.NotFoundError, match="the model 'gpt-4' does not exist here"):
        client(server).chat.completions.create(model="gpt-4", messages=HELLO)
    too_big = [{"role": "user", "content": "x" * 70_000}]  # over --openai-max-body-bytes 65536
    with pytest.raises(openai.APIStatusError, match="over 65536 bytes") as caught:
        client(server).chat.completions.create(model=MODEL, messages=too_big)
    assert caught.value.status_code == 413
    url = server.http_url + "/v1/chat/completions"
    assert httpx.post(url, content="{", headers={"content-type": "application/json"}).json()["error"]["message"] \
        .startswith("the body is not JSON")
    assert httpx.post(url, content="{}", headers={"content-type": "text/plain"}).status_code == 415
    assert httpx.post(url, json={}, headers={"origin": "http://evil.example"}).status_code == 403
    assert httpx.get(server.http_url + "/v1/models", headers={"host": "evil.example:80"}).status_code == 421


def test_a_client_that_leaves_cancels_its_job(server):
    before = health(server)["openai_api"]["cancelled"]
    stream = client(server).completions.create(model=MODEL, stream=True, **LONG)
    next(iter(stream))  # the server has taken the job; the model is writing its first canvas
    stream.close()
    wait_until(lambda: health(server)["openai_api"]["cancelled"] == before + 1, 10, "the stream's job to be cancelled")
    with pytest.raises(httpx.ReadTimeout):  # the same without streaming: the client gives up waiting
        httpx.post(server.http_url + "/v1/completions", json={"model": MODEL, **LONG}, timeout=0.5)
    wait_until(lambda: health(server)["openai_api"]["cancelled"] == before + 2, 10, "the request's job to be cancelled")
    engine = health(server)["engine"]
    assert (engine["running"], engine["waiting"], health(server)["openai_api"]["in_flight"]) == (0, 0, 0)


def test_with_a_secret_only_an_engine_token_opens_the_api_and_the_rate_limit_holds(tmp_path_factory):
    server = start(tmp_path_factory, "secured", "--secret", SECRET, "--redraft-user-burst", "2",
                   "--redraft-user-per-min", "1", "--openai-model-name", "house-model")
    try:
        engine_token = mint_engine_token(SECRET, None)
        assert [model.id for model in client(server, engine_token).models.list().data] == ["house-model"]
        with pytest.raises(openai.AuthenticationError, match="signature is not valid"):
            client(server, "sk-wrong").models.list()
        with pytest.raises(openai.AuthenticationError, match="document share token"):
            client(server, mint_token(SECRET, "*", "edit", None)).chat.completions.create(model=MODEL, messages=HELLO)
        session = httpx.get(server.http_url + "/api/docs/notes/session", params={"token": engine_token})
        assert session.status_code == 401 and "engine token" in session.json()["detail"]
        api = client(server, engine_token)
        for model in ("house-model", MODEL):  # the burst; the model's own name is still understood
            assert api.chat.completions.create(model=model, messages=HELLO, max_tokens=8).choices
        with pytest.raises(openai.RateLimitError, match="at most 1 a minute") as caught:
            api.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8)
        assert int(caught.value.response.headers["retry-after"]) >= 1
    finally:
        server.stop()


def test_without_an_engine_the_api_answers_503(tmp_path_factory):
    server = start(tmp_path_factory, "off", engine="off")
    try:
        with pytest.raises(openai.InternalServerError, match="redrafts are turned off") as caught:
            client(server).chat.completions.create(model=MODEL, messages=HELLO)
        assert caught.value.status_code == 503 and caught.value.body["code"] == "engine_unavailable"
    finally:
        server.stop()


def test_the_api_can_be_turned_off(tmp_path_factory):
    server = start(tmp_path_factory, "no-api", "--openai-api", "off", engine="off")
    try:
        assert httpx.get(server.http_url + "/v1/models").status_code == 404
        assert "openai_api" not in health(server)
    finally:
        server.stop()


class ScriptedJob:
    """A job that has run: its progress dicts, then its outcome or its failure. For the paths a healthy engine on
    a CPU cannot be made to take (a GPU out of memory mid-answer, a Redis worker's retry writing other text)."""

    def __init__(self, committed: list[str], outcome: dict | None = None, failure: str | None = None):
        self.committed, self.outcome, self.failure = committed, outcome, failure

    async def __aiter__(self):
        for text in self.committed:
            yield {"committed": text}

    async def result(self) -> dict:
        if self.failure is not None:
            raise EngineFailed(self.failure)
        return self.outcome


def stream_events(job: ScriptedJob) -> list:
    async def collect():
        return [event async for event in Reply("chat", MODEL).events(job)]

    events = b"".join(anyio.run(collect)).split(b"\n\n")
    assert events[-1] == b""
    return [json.loads(event.removeprefix(b"data: ")) if event != b"data: [DONE]" else "[DONE]" for event in events[:-1]]


def test_a_stream_sends_what_is_decided_then_the_rest_and_fails_with_an_error_event():
    done = {"status": "done", "text": "Hello world!", "finish_reason": "stop", "tokens": 3, "prompt_tokens": 2}
    events = stream_events(ScriptedJob(["", "Hello ", "Hello ", "Hello world"], done))
    assert [e if e == "[DONE]" else (e["choices"][0]["delta"], e["choices"][0]["finish_reason"]) for e in events] == [
        ({"role": "assistant", "content": ""}, None), ({"content": "Hello "}, None), ({"content": "world"}, None),
        ({"content": "!"}, None), ({}, "stop"), "[DONE]"]
    failed = stream_events(ScriptedJob(["Hello "], failure="CUDA out of memory"))
    assert failed[-1] == {"error": {"message": "the engine failed: CUDA out of memory", "type": "server_error",
                                    "param": None, "code": "engine_failed"}}
    changed = stream_events(ScriptedJob(["Hello "], {**done, "text": "Goodbye"}))
    assert changed[-1]["error"]["message"].startswith("the answer changed after part of it was sent")


def test_the_api_serves_through_redis_workers_with_the_same_answer(server, tmp_path_factory):
    """`--engine redis`: the chat spec travels through Redis to a real worker, whose engine (one thread, the native
    RNG) writes what the in-process one does for the same seed."""
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    worker = RedraftWorker(redis_server.url, tmp_path_factory.mktemp("worker"))
    front = None
    try:
        worker.start()
        front = ServerProcess(tmp_path_factory.mktemp("front"), redis_url=redis_server.url,
                              extra_args=("--engine", "redis", *OPEN_ARGS)).start()
        wait_until(lambda: health(front)["engine"]["status"] == "ready", 30, "the server to see the worker")
        request = {"model": MODEL, "messages": HELLO, "seed": 2, "max_tokens": 64}
        local = client(server).chat.completions.create(**request).choices[0].message.content
        chunks = client(front).chat.completions.create(**request, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == local
    finally:
        for process in (front, worker, redis_server):
            if process is not None:
                process.stop()


@pytest.mark.parametrize("fields, message", [
    ({"openai_api": "maybe"}, "openai_api must be on or off, not 'maybe'"),
    ({"openai_model_name": " "}, "openai_model_name must not be blank"),
    ({"openai_max_body_bytes": 100}, "openai_max_body_bytes must be at least 1024, not 100"),
])
def test_bad_api_settings_are_refused_with_the_field_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ServerConfig(**fields)


def test_redraft_token_mints_an_engine_token_or_a_share_token_never_both(capsys):
    assert cli_main(["token", "--engine", "--secret", SECRET]) == 0
    verify_engine_token(SECRET, capsys.readouterr().out.strip())
    assert cli_main(["token", "--engine", "--doc", "notes", "--secret", SECRET]) == 2
    assert "give either --doc NAME (a share token) or --engine" in capsys.readouterr().err
