"""`--engine openai` against a hostile or broken upstream (tests/support/openai_faults.py): one that never stops,
floods, trickles, redirects, answers HTML or compresses, and one that quotes our secrets back. Each must end
the redraft with a bounded memory and a clear outcome, and no secret may show in a message or a log line."""

from __future__ import annotations

import logging

import anyio
import pytest

from engine.api import RemoteConfig, RemoteEngine
from engine.remote import engine as remote
from engine.remote.stream import RemoteError
from jobs import progress_queue
from tests.engine.remote.test_engine import REWRITE, failure, load, run
from tests.support.openai_faults import FaultServer

CHAT = {"id": "c1", "kind": "chat", "messages": [{"role": "user", "content": "Sing."}]}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def faults():
    with FaultServer() as server:
        yield server


async def outcome_of(faults: FaultServer, spec: dict, **kwargs) -> dict:
    engine = await load(faults, **kwargs)
    try:
        _, outcome = await run(engine, spec)
    finally:
        await engine.close()
    return outcome


def summary(outcome: dict) -> tuple:
    return outcome["status"], outcome["text"], outcome["complete"], outcome["finish_reason"]


# --- an upstream that never stops -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_upstream_that_ignores_max_tokens_is_cut_there(faults):
    faults.mode = "endless"
    outcome = await outcome_of(faults, {**CHAT, "max_tokens": 5})
    assert summary(outcome) == ("done", "la " * 5, False, "length")
    assert await anyio.to_thread.run_sync(faults.disconnected.wait, 5)  # and its stream is closed


@pytest.mark.anyio
async def test_without_max_tokens_an_endless_answer_is_cut_at_the_context(faults):
    faults.mode = "endless"
    outcome = await outcome_of(faults, CHAT, context=64)
    assert summary(outcome) == ("done", "la " * 64, False, "length")


@pytest.mark.anyio
async def test_an_answer_past_the_byte_limit_is_cut_before_the_chunk_that_crosses_it(faults, monkeypatch):
    monkeypatch.setattr(remote, "MAX_TEXT_BYTES", 30)
    faults.mode = "endless"
    assert summary(await outcome_of(faults, {**CHAT, "max_tokens": 1000})) == ("done", "la " * 10, False, "length")
    monkeypatch.setattr(remote, "MAX_TEXT_BYTES", 100_000)
    faults.mode, faults.huge_bytes = "huge_chunk", 600_000  # one chunk of 600 kB: not taken at all
    assert summary(await outcome_of(faults, CHAT)) == ("done", "", False, "length")


@pytest.mark.anyio
async def test_a_line_without_end_fails_instead_of_filling_the_memory(faults):
    faults.mode = "long_line"
    progress, message = await failure(faults)
    assert progress == []
    assert message == "the engine server sent a line of over 1024 KiB without its end: not an event stream"
    # read up to the limit and no further: the 1 MiB, and what loopback's socket buffers took (some MB)
    assert faults.num_sent < 64 << 20


@pytest.mark.anyio
async def test_an_upstream_trickling_under_the_timeout_meets_the_deadline(faults):
    faults.mode, faults.delay_s = "trickle", 0.2  # a byte every 0.2 s: never silent for timeout_s
    progress, message = await failure(faults, timeout_s=1.0, deadline_s=1.5)
    assert [p["text"] for p in progress] == ["A "]
    assert message == f"the engine server at {faults.url} did not finish its answer within 1.5 s (--engine-deadline)"



@pytest.mark.anyio
async def test_a_model_listing_trickled_for_ever_meets_the_deadline(faults):
    faults.is_models_trickled, faults.delay_s = True, 0.2
    with anyio.fail_after(10), pytest.raises(RemoteError) as raised:
        await load(faults, timeout_s=1.0, deadline_s=1.5)
    assert str(raised.value) == f"{faults.url}/models did not answer within 1.5 s (--engine-deadline)"
    assert await anyio.to_thread.run_sync(faults.disconnected.wait, 5)

def test_the_deadline_must_be_positive():
    with pytest.raises(ValueError, match="engine_deadline must be positive, not 0"):
        RemoteConfig("http://gpu:8000/v1", deadline_s=0)


@pytest.mark.anyio
async def test_a_reader_that_stalls_holds_only_the_newest_progress(faults, monkeypatch):
    monkeypatch.setattr(progress_queue, "MAX_PENDING_CHARS", 1000)
    faults.reply = [f"w{i:02} " for i in range(100)]  # 4 characters a token: 400 in all
    engine = await load(faults)
    try:
        with anyio.fail_after(10):
            generation = engine.redraft(CHAT)
            outcome = await generation.result()  # nothing read meanwhile, as a /v1 client that does not read
            progress = [p async for p in generation]
    finally:
        await engine.close()
    assert outcome["text"] == "".join(faults.reply)
    # the newest snapshots, in order, holding at most 1000 characters of text and committed text together
    texts = ["".join(faults.reply[: i + 1]) for i in range(100)]
    assert [p["text"] for p in progress] == texts[-len(progress) :]
    held = sum(len(p["text"]) + len(p["committed"]) for p in progress)
    assert held <= 1000 < 2 * sum(map(len, texts[-len(progress) - 1 :]))  # and one more would not have fitted


@pytest.mark.anyio
async def test_a_long_answer_in_tiny_chunks_is_published_throttled_and_whole_at_the_end(faults, monkeypatch):
    monkeypatch.setattr(remote, "THROTTLE_FROM_CHARS", 10)
    monkeypatch.setattr(remote, "PROGRESS_INTERVAL_S", 60.0)  # past 10 characters, nothing more until the end
    faults.reply = ["ab"] * 100
    engine = await load(faults)
    try:
        progress, outcome = await run(engine, CHAT)
    finally:
        await engine.close()
    assert outcome["text"] == "ab" * 100
    # a chunk each while under 10 characters, then nothing until the interval has passed, and all at the end
    assert [p["text"] for p in progress] == ["ab" * i for i in (1, 2, 3, 4, 100)]

# --- an upstream that answers something else -------------------------------------------------------------


@pytest.mark.anyio
async def test_a_redirect_is_not_followed_and_its_secrets_not_shown(faults):
    faults.mode = "redirect"
    progress, message = await failure(faults, api_key="sk-ours")
    assert progress == []
    assert message == (
        "the engine server answered 307 Temporary Redirect, a redirect to http://elsewhere.example/v1/chat/completions"
        ": redirects are not followed, so set --engine-url to the address it points to"
    )
    assert [request["path"] for request in faults.requests] == ["/v1/chat/completions"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode, expected", [
    ("html", "the engine server answered text/html; charset=utf-8, not a stream of events (text/event-stream): is "
             "--engine-url the API's base, e.g. http://host:8000/v1?"),
    ("gzip", "the engine server compressed its stream (gzip) though asked not to"),
])
async def test_a_200_that_is_not_an_event_stream_fails_clearly(faults, mode, expected):
    faults.mode = mode
    progress, message = await failure(faults)
    assert (progress, message) == ([], expected)
    assert faults.requests[-1]["headers"]["Accept-Encoding"] == "identity"  # a gzip bomb is never asked for


# --- secrets ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_password_in_the_url_goes_as_basic_auth_and_never_into_a_log_line(faults, caplog):
    caplog.set_level(logging.DEBUG)
    url = faults.url.replace("http://", "http://us%40er:hunter2@")
    config = RemoteConfig(url, timeout_s=2.0)
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    engine = await RemoteEngine.load(config)
    try:
        _, outcome = await run(engine, REWRITE)
    finally:
        await engine.close()
    assert outcome["text"] == "A better sentence."
    assert faults.requests[-1]["headers"]["Authorization"] == "Basic dXNAZXI6aHVudGVyMg=="  # us@er:hunter2
    assert "HTTP Request: POST" in caplog.text  # httpx logs each request's URL...
    assert "hunter2" not in caplog.text  # ...without the password


@pytest.mark.anyio
async def test_an_upstream_quoting_the_key_back_has_it_blanked(faults):
    faults.mode, faults.status_code = "status", 400
    faults.error_message = "Incorrect API key provided: sk-secret-123 (or try sk-other)"
    _, message = await failure(faults, api_key="sk-secret-123")
    assert message == (
        "the engine server answered 400 Bad Request: Incorrect API key provided: [redacted] (or try sk-other) "
        "(code 400)"
    )


@pytest.mark.anyio
async def test_a_listing_of_thousands_of_models_is_named_in_one_short_line(faults):
    faults.models = [{"id": f"org/model-{i}"} for i in range(5000)]
    with pytest.raises(RemoteError) as raised:
        await load(faults)
    message = str(raised.value)
    assert message.startswith("the engine server lists 5000 models (org/model-0, org/model-1, ")
    assert message.endswith("…): choose one with --engine-model") and len(message) < 400


@pytest.mark.parametrize("key", ["sk-abc\ndef-secret", "sk-abc\x00-secret", "sk-\u00e9-secret", "sk abc-secret"])
def test_a_malformed_key_is_refused_without_being_shown(key):
    # httpx refused it only when sending, with the header in its message: "Illegal header value b'Bearer sk-..."
    with pytest.raises(ValueError) as raised:
        RemoteConfig("http://gpu:8000/v1", api_key=key)
    assert str(raised.value) == ("the engine API key (REDRAFT_ENGINE_API_KEY or engine_api_key_file) must be printable "
                                 "ASCII without spaces or line breaks inside it")


@pytest.mark.parametrize("url", ["ftp://user:hunter2@gpu/v1", "user:hunter2@gpu:8000/v1"])
def test_a_bad_url_is_quoted_without_its_password(url):
    from server.config import ServerConfig

    for make in (lambda: RemoteConfig(url), lambda: ServerConfig(engine="openai", engine_url=url)):
        with pytest.raises(ValueError) as raised:
            make()
        assert str(raised.value) == ("engine_url must be an http:// or https:// URL (e.g. http://host:8000/v1), not "
                                     f"{url.replace('user:hunter2', '…')!r}")


def test_a_password_in_the_url_flag_is_told_apart_from_one_in_the_environment(monkeypatch):
    from engine.remote.config import password_on_command_line

    url = "http://user:hunter2@gpu:8000/v1"
    monkeypatch.delenv("REDRAFT_ENGINE_URL", raising=False)
    assert password_on_command_line(url) and not password_on_command_line("http://user@gpu/v1")
    monkeypatch.setenv("REDRAFT_ENGINE_URL", url)
    assert not password_on_command_line(url)
