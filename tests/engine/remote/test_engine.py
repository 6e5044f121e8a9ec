"""`--engine openai`: RemoteEngine against tests/support/openai_faults.py on loopback, one test per failure mode.

The happy path against real servers (Redraft's own endpoint, llama.cpp) is in the interop suite; here the
faults server makes each failure happen on demand.
"""

from __future__ import annotations

import logging
import sys

import anyio
import pytest

from engine.api import RemoteConfig, RemoteEngine, RequestError
from engine.remote.config import read_api_key
from engine.remote.engine import FALLBACK_CONTEXT, ByteEstimate, build_request
from engine.remote.stream import RemoteError
from engine.text.prompts import RedraftPrompt, build_messages, fit_prompt
from jobs.tasks import TASKS
from tests.support.openai_faults import MODEL, FaultServer
from tests.support.processes import free_port

REWRITE = {"id": "r1", "kind": "rewrite", "passage": "Make this better.", "instruction": "", "seed": 7}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def faults():
    with FaultServer() as server:
        yield server


async def load(faults: FaultServer, **kwargs) -> RemoteEngine:
    return await RemoteEngine.load(RemoteConfig(faults.url, **{"timeout_s": 2.0, **kwargs}))


async def run(engine: RemoteEngine, spec: dict = REWRITE) -> tuple[list[dict], dict]:
    with anyio.fail_after(10):
        generation = engine.redraft(spec)
        progress = [p async for p in generation]
        return progress, await generation.result()


async def failure(faults: FaultServer, spec: dict = REWRITE, **kwargs) -> tuple[list[dict], str]:
    """The progress seen and the message of the RemoteError the generation ended with."""
    engine = await load(faults, **kwargs)
    try:
        with anyio.fail_after(10):
            generation = engine.redraft(spec)
            progress = [p async for p in generation]
            with pytest.raises(RemoteError) as raised:
                await generation.result()
    finally:
        await engine.close()
    message = str(raised.value)
    assert "\n" not in message
    return progress, message


# --- the happy path -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_rewrite_streams_progress_and_ends_with_the_outcome(faults):
    engine = await load(faults)
    try:
        assert (engine.model, engine.context) == (MODEL, 2048)  # the only model, and vLLM's max_model_len
        progress, outcome = await run(engine)
    finally:
        await engine.close()
    assert [p["text"] for p in progress] == ["A ", "A better ", "A better sentence."]
    assert progress[-1] == {
        "step": 3, "max_steps": 256, "canvas_index": 0, "num_canvases": 1, "progress": {"step": 3, "max_steps": 256},
        "text": "A better sentence.", "tokens": [["A better sentence.", 1.0]], "stopped": False, "finished": False,
        "committed": "A better sentence.", "streaming": True,
    }
    timings = outcome.pop("timings")
    assert set(timings) == {"queue_s", "prefill_s", "denoise_s"} and all(v >= 0 for v in timings.values())
    (request,) = faults.requests
    assert outcome == {"status": "done", "text": "A better sentence.", "complete": True, "steps": [], "tokens": 3,
                       "prompt_tokens": len(request["body"]["messages"][0]["content"].split()),  # the server's usage
                       "finish_reason": "stop"}
    body = request["body"]
    assert request["path"] == "/v1/chat/completions"
    # the local engine's prompt: a plain rewrite's task (jobs/tasks.py) with its instruction
    assert body["messages"] == build_messages(RedraftPrompt("rewrite", "Make this better.", TASKS["rewrite"][1]))
    assert (body["model"], body["stream"], body["max_tokens"], body["seed"]) == (MODEL, True, 256, 7)
    assert body["stream_options"] == {"include_usage": True}
    assert "Authorization" not in request["headers"]


@pytest.mark.anyio
async def test_finish_reason_length_is_an_incomplete_answer(faults):
    faults.mode = "length"
    engine = await load(faults)
    try:
        _, outcome = await run(engine)
    finally:
        await engine.close()
    assert (outcome["status"], outcome["complete"], outcome["finish_reason"]) == ("done", False, "length")


@pytest.mark.anyio
async def test_the_steps_go_only_to_another_redraft_server(faults):
    engine = await load(faults)
    try:
        await run(engine, {**REWRITE, "steps": 12})
        faults.models[0]["owned_by"] = "redraft"  # what a Redraft server's /v1/models says
        other = await load(faults)
        try:
            await run(other, {**REWRITE, "steps": 12})
            await run(other, REWRITE)
        finally:
            await other.close()
    finally:
        await engine.close()
    stock, redraft, unset = (request["body"] for request in faults.requests if request["path"] != "/v1/models")
    assert "redraft_steps" not in stock and redraft["redraft_steps"] == 12 and "redraft_steps" not in unset


@pytest.mark.anyio
async def test_chat_and_complete_kinds_pass_through_with_max_tokens_and_stop(faults):
    faults.reply = ["Hello", " there", " STOP", " never"]
    engine = await load(faults)
    try:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        chat = {"id": "c1", "kind": "chat", "messages": messages, "max_tokens": 5, "stop": [" STOP"]}
        progress, outcome = await run(engine, chat)
        _, completed = await run(engine, {"id": "c2", "kind": "complete", "prompt": "Once upon", "max_tokens": 9})
    finally:
        await engine.close()
    # the server ignored `stop` (it sent " STOP never"): the text is cut before it all the same
    assert (outcome["text"], outcome["finish_reason"], progress[-1]["text"]) == ("Hello there", "stop", "Hello there")
    assert completed["text"] == "Hello there STOP never"
    chat, complete = (request["body"] for request in faults.requests)
    assert (chat["messages"], chat["max_tokens"], chat["stop"]) == (messages, 5, [" STOP"])
    assert [r["path"] for r in faults.requests] == ["/v1/chat/completions", "/v1/completions"]
    assert (complete["prompt"], complete["max_tokens"], "messages" in complete) == ("Once upon", 9, False)


@pytest.mark.anyio
async def test_the_api_key_is_sent_as_a_bearer_token(faults, tmp_path, monkeypatch):
    faults.api_key = "sk-right"
    key_file = tmp_path / "key"
    key_file.write_text("sk-right\n")
    monkeypatch.delenv("REDRAFT_ENGINE_API_KEY", raising=False)
    engine = await load(faults, api_key=read_api_key(key_file))
    try:
        _, outcome = await run(engine)
    finally:
        await engine.close()
    assert outcome["status"] == "done"
    assert {r["headers"]["Authorization"] for r in faults.requests} == {"Bearer sk-right"}
    assert "sk-right" not in repr(engine.config)  # never in a log line


def test_the_key_comes_from_the_environment_first_then_the_file(tmp_path, monkeypatch):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    monkeypatch.setenv("REDRAFT_ENGINE_API_KEY", "from-env")
    assert read_api_key(key_file) == "from-env"
    monkeypatch.delenv("REDRAFT_ENGINE_API_KEY")
    assert (read_api_key(key_file), read_api_key(None)) == ("from-file", None)
    with pytest.raises(ValueError, match=r"engine_api_key_file: cannot read '.*missing' \(No such file"):
        read_api_key(tmp_path / "missing")


@pytest.mark.anyio
async def test_requests_beyond_max_concurrency_wait_in_order(faults):
    faults.mode = "hang"
    engine = await load(faults, max_concurrency=1)
    try:
        first, *waiting = [engine.redraft({**REWRITE, "passage": f"Passage {n}."}) for n in range(1, 4)]
        with anyio.fail_after(5):
            await first.__anext__()  # the first is streaming...
        assert (engine.queue_length, engine.status()["running"], engine.status()["waiting"]) == (2, 1, 2)
        assert len(faults.requests) == 1  # ...and the others were not sent
        faults.mode = "ok"
        first.cancel()
        with anyio.fail_after(5):
            assert (await first.result())["status"] == "cancelled"
            assert [(await generation.result())["status"] for generation in waiting] == ["done", "done"]
    finally:
        await engine.close()
    sent = [request["body"]["messages"][0]["content"] for request in faults.requests]
    assert [next(n for n in (1, 2, 3) if f"Passage {n}." in prompt) for prompt in sent] == [1, 2, 3]


# --- models and context ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_several_models_need_engine_model(faults):
    faults.models = [{"id": "a"}, {"id": "b", "context_length": 8192}]
    with pytest.raises(RemoteError, match=r"lists 2 models \(a, b\): choose one with --engine-model"):
        await load(faults)
    engine = await load(faults, model="b")
    assert (engine.model, engine.context) == ("b", 8192)  # also the context_length field
    await engine.close()
    with pytest.raises(RemoteError, match=r"has no model 'c'; it lists: a, b"):
        await load(faults, model="c")


@pytest.mark.anyio
async def test_context_comes_from_the_flag_or_falls_back_with_a_log_line(faults, caplog):
    faults.models = [{"id": "quiet"}]
    engine = await load(faults, context=1000)
    assert engine.context == 1000
    await engine.close()
    with caplog.at_level(logging.WARNING, logger="engine.remote.engine"):
        engine = await load(faults)
    await engine.close()
    assert engine.context == FALLBACK_CONTEXT
    assert "does not say quiet's context; assuming 4096 tokens (set --engine-context)" in caplog.text


def test_long_context_is_trimmed_to_the_remote_context_by_the_estimate():
    spec = {**REWRITE, "before": "b " * 5000, "after": "a " * 5000}
    request = build_request(spec, MODEL, 2048)
    (message,) = request.body["messages"]
    assert request.prompt_tokens <= 2048 - 256 and request.max_tokens == 256
    assert request.prompt_tokens > 2048 - 256 - 40  # and it uses what the budget leaves
    assert "Passage:\n<<<\nMake this better.\n>>>" in message["content"]
    blocks = [part.split("\n>>>")[0] for part in message["content"].split("<<<\n")[1:]]
    assert blocks[1] == "Make this better." and blocks[0].endswith("b b ") and blocks[2].startswith("a a ")
    assert abs(len(blocks[0]) - len(blocks[2])) <= 2  # the spare budget is shared evenly


def test_the_estimate_errs_high_on_english_and_code_and_trims_within_budget():
    from transformers import AutoTokenizer

    from tests.support.processes import ROOT

    estimate = ByteEstimate()
    assert [estimate.text(text) for text in ("word " * 100, "日本語" * 10, "")] == [334, 60, 0]  # bytes / 1.5
    # even the shipped model's small vocabulary takes fewer tokens (see BYTES_PER_TOKEN for the numbers)
    shipped = AutoTokenizer.from_pretrained(ROOT / "engine" / "models" / "redraft-small")
    for path in ("README.md", "engine/remote/engine.py"):
        text = (ROOT / path).read_text()[:20000]
        assert estimate.text(text) > len(shipped.encode(text, add_special_tokens=False)), path
    prompt = RedraftPrompt("rewrite", "p" * 10, before="x" * 1000)
    trimmed = fit_prompt(estimate, prompt, 300)
    assert estimate.messages(build_messages(trimmed)) <= 300 and trimmed.passage == prompt.passage


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "summarise"}, "kind must be one of rewrite, fill, continue, chat, complete, not 'summarise'"),
        ({"kind": "chat", "messages": []}, "messages: a non-empty list"),
        ({"kind": "chat", "messages": [{"role": "tool", "content": "x"}]}, "role must be one of system, user, assistant"),
        ({"kind": "complete", "prompt": 3}, "prompt must be text"),
        ({"kind": "complete", "prompt": "x", "max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"kind": "complete", "prompt": "x", "stop": ["a"] * 5}, "stop must be a list of at most 4"),
        ({"kind": "complete", "prompt": "x", "stop": ["a" * 257]}, "each stop string must be at most 256 characters"),
        ({"kind": "rewrite", "passage": "x" * 3000}, "the instruction and passage need"),
    ],
)
def test_bad_specs_are_refused_before_anything_is_sent(spec, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_request({"id": "bad", **spec}, MODEL, 1024)


# --- every failure mode ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_refused_connection():
    port = free_port()  # nothing listens there
    with pytest.raises(RemoteError) as raised:
        await RemoteEngine.load(RemoteConfig(f"http://127.0.0.1:{port}/v1", timeout_s=2.0))
    assert str(raised.value) == f"cannot connect to the engine server at http://127.0.0.1:{port}/v1: connection refused"


@pytest.mark.anyio
async def test_a_password_in_the_url_is_never_shown():
    port = free_port()
    config = RemoteConfig(f"http://user:hunter2@127.0.0.1:{port}/v1/", timeout_s=2.0)
    assert (config.base_url, config.shown_url) == (f"http://user:hunter2@127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}/v1")
    with pytest.raises(RemoteError) as raised:
        await RemoteEngine.load(config)
    assert str(raised.value) == f"cannot connect to the engine server at http://127.0.0.1:{port}/v1: connection refused"


@pytest.mark.anyio
async def test_a_server_that_is_not_openai_compatible(faults):
    faults.models = {"unexpected": "shape"}
    with pytest.raises(RemoteError) as raised:
        await load(faults)
    assert str(raised.value) == f"{faults.url}/models lists no model: is a model loaded, and is the URL the API's /v1?"


@pytest.mark.anyio
async def test_a_url_without_v1_gets_a_hint(faults):
    base = faults.url.removesuffix("/v1")
    with pytest.raises(RemoteError) as raised:
        await RemoteEngine.load(RemoteConfig(base, timeout_s=2.0))
    assert str(raised.value) == (f"{base}/models is not found (404): the URL is the API's base, usually ending in /v1 "
                                 "(e.g. http://host:8000/v1)")


@pytest.mark.anyio
async def test_refused_connection_mid_life(faults):
    engine = await load(faults)
    faults.stop()  # the server went away after the engine loaded
    try:
        with anyio.fail_after(10):
            generation = engine.redraft(REWRITE)
            assert [p async for p in generation] == []
            refused = f"^cannot connect to the engine server at {faults.url}: connection refused$"
            with pytest.raises(RemoteError, match=refused):
                await generation.result()
    finally:
        await engine.close()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["slow_headers", "slow_chunks"])
async def test_a_server_silent_past_the_timeout(faults, mode):
    faults.mode, faults.delay_s = mode, 3.0
    progress, message = await failure(faults, timeout_s=0.5)
    assert message == f"the engine server at {faults.url} sent nothing for 0.5 s (--engine-timeout)"
    assert [p["text"] for p in progress] == ([] if mode == "slow_headers" else ["A "])


@pytest.mark.anyio
async def test_a_wrong_key_says_so(faults):
    faults.api_key = "sk-right"
    with pytest.raises(RemoteError) as raised:
        await load(faults, api_key="sk-wrong")
    assert str(raised.value) == (
        "the engine server refused the API key (401 Unauthorized: Incorrect API key provided. (code invalid_api_key)): "
        "the key in REDRAFT_ENGINE_API_KEY or --engine-api-key-file is wrong"
    )
    with pytest.raises(RemoteError, match=r"wants an API key \(401 Unauthorized\): set REDRAFT_ENGINE_API_KEY"):
        await load(faults)


@pytest.mark.anyio
async def test_a_wrong_key_during_a_redraft(faults):
    engine = await load(faults)
    faults.api_key = "sk-rotated"  # the key was changed on the server after we loaded
    try:
        with anyio.fail_after(10):
            generation = engine.redraft(REWRITE)
            assert [p async for p in generation] == []
            with pytest.raises(RemoteError, match=r"^the engine server wants an API key \(401 Unauthorized\)"):
                await generation.result()
    finally:
        await engine.close()


@pytest.mark.anyio
@pytest.mark.parametrize("status, upstream, expected", [
    (400, "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens.",
     "the engine server answered 400 Bad Request: This model's maximum context length is 2048 tokens. However, you "
     "requested 3000 tokens. (code 400)"),
    (500, "the GPU caught fire",
     "the engine server answered 500 Internal Server Error: the GPU caught fire (code 500)"),
    (503, "model is loading", "the engine server answered 503 Service Unavailable: model is loading (code 503)"),
])
async def test_an_error_status_carries_the_servers_message(faults, status, upstream, expected):
    faults.mode, faults.status_code, faults.error_message = "status", status, upstream
    progress, message = await failure(faults)
    assert (progress, message) == ([], expected)


@pytest.mark.anyio
async def test_a_500_mid_stream(faults):
    faults.mode = "error_mid_stream"
    progress, message = await failure(faults)
    assert [p["text"] for p in progress] == ["A ", "A better "]  # shown live, but the outcome is the error
    assert message == (
        "the engine server failed mid-stream: CUDA error: an illegal memory access was encountered (code 500)"
    )


@pytest.mark.anyio
async def test_a_stream_that_ends_without_finishing_is_truncated(faults):
    faults.mode = "truncated"
    _, message = await failure(faults)
    assert message == (
        "the engine server's stream ended before its answer was finished (truncated: no finish_reason and no [DONE])"
    )


@pytest.mark.anyio
async def test_a_connection_cut_mid_stream_is_truncated(faults):
    faults.mode = "cut"
    _, message = await failure(faults)
    assert message.startswith(f"the engine server at {faults.url} broke the connection off before its answer was "
                              "finished (truncated stream: ")


@pytest.mark.anyio
async def test_invalid_json_in_a_chunk(faults):
    faults.mode = "bad_json"
    progress, message = await failure(faults)
    assert len(progress) == 1
    assert message == """the engine server sent a chunk that is not JSON: '{"choices": [{"delta": {"content": "x"'"""


@pytest.mark.anyio
async def test_cancel_closes_the_stream(faults):
    faults.mode = "hang"
    engine = await load(faults)
    try:
        generation = engine.redraft(REWRITE)
        with anyio.fail_after(5):
            first = await generation.__anext__()
        assert first["text"] == "A "
        generation.cancel()
        with anyio.fail_after(5):
            outcome = await generation.result()
            assert [p async for p in generation] == []
        assert (outcome["status"], outcome["text"], outcome["complete"], outcome["finish_reason"]) == (
            "cancelled", "A ", False, "length")
        # the server's next keep-alive write finds the connection closed (it writes every 50 ms)
        assert await anyio.to_thread.run_sync(faults.disconnected.wait, 5)
        assert engine.status()["running"] == 0
    finally:
        await engine.close()


def test_the_remote_engine_and_the_worker_import_no_torch():
    import subprocess

    # torch made unimportable: a CPU-only node without the engine extra drives a remote engine
    code = "import sys; sys.modules['torch'] = None; import engine.api, worker.run; engine.api.RemoteEngine"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_worker_flags_make_a_remote_config(monkeypatch, tmp_path):
    from redraft.cli import build_parser
    from redraft.worker import config_from_args

    monkeypatch.setenv("REDRAFT_ENGINE_API_KEY", "sk-env")
    args = ["worker", "--redis-url", "redis://x", "--engine", "openai", "--engine-url", "http://gpu:8000/v1",
            "--engine-context", "8192", "--engine-max-concurrency", "6", "--engine-timeout", "9",
            "--engine-deadline", "30"]
    config = config_from_args(build_parser().parse_args(args))
    assert config.remote == RemoteConfig("http://gpu:8000/v1", None, 8192, 9.0, 6, "sk-env", deadline_s=30.0)
    assert (config.engine, config.max_batch) == ("openai", 6)  # one job is one request upstream
    assert config_from_args(build_parser().parse_args(args[:3])).remote is None  # --engine local: none
    with pytest.raises(ValueError, match="--engine openai takes redrafts to an OpenAI-compatible server: set"):
        config_from_args(build_parser().parse_args([*args[:5]]))
    with pytest.raises(ValueError, match="--engine-max-concurrency: cannot read 'many'"):
        config_from_args(build_parser().parse_args([*args, "--engine-max-concurrency", "many"]))
