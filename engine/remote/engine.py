"""`--engine openai`: redrafts from any OpenAI-compatible server (vLLM, llama.cpp, Ollama, a gateway).

`RemoteEngine` has `engine.api.Engine`'s text interface (`load`, `redraft(spec)` -> a generation of
progress dicts and an outcome dict, `status`, `queue_length`, `close`), so the server's backends and the
Redis worker use it as they use the local engine. Torch-free: a CPU-only node can drive a remote GPU.

The redraft kinds go through the same task prompts as the local engine (engine.text.prompts.build_messages),
trimmed to the remote model's context; `chat` passes the messages as they are and `complete` the raw prompt
to `/v1/completions`. Answers are streamed: each chunk is a progress dict with `streaming: true` (the model
writes left to right, so what it wrote is final: `committed` is all of it). Requests in flight upstream
are capped at `max_concurrency`; the rest wait in order (asyncio.Semaphore wakes its waiters FIFO).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass

import httpx

from engine.errors import RequestError
from engine.remote.answer import AnswerText
from engine.remote.config import RemoteConfig, read_api_key
from engine.remote.stream import (
    DONE,
    RemoteError,
    check_stream_response,
    connection_error,
    events,
    lines,
    one_line,
    parse_chunk,
    read_capped,
    status_error,
)
from engine.runtime.redrafts import MAX_CANVASES, REWRITE_ROOM, OutputLimit, redraft_prompt
from engine.text.prompts import PromptTooLongError, build_messages, fit_prompt
from jobs.progress_queue import JobStream
from jobs.protocol import job_outcome, progress_snapshot
from jobs.spec import RedraftSpec
from jobs.tasks import EVERY_TASK

__all__ = ["RemoteConfig", "RemoteEngine", "RemoteError", "RemoteGeneration", "read_api_key"]

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = 4096  # when neither --engine-context nor /v1/models says (llama.cpp's default n_ctx)
# The output room of the redraft kinds, sized as engine/runtime/redrafts.py sizes the local engine's canvases: a
# rewrite gets half again the passage, in whole blocks of DiffusionGemma's canvas, fill and continue one.
BLOCK_TOKENS = 256
# We do not have the remote model's tokenizer, so prompt tokens are estimated from UTF-8 bytes, erring high:
# trimming more context than needed costs less than a request the server refuses as too long. The shipped
# redraft-small's small vocabulary measured 2.85 bytes a token on the README, 1.98 on Python code and 1.57 on
# German (1.0 on Japanese: byte by byte); the large vocabularies of the models people serve (Llama 3, Gemma:
# 128k-262k tokens) pack more bytes into a token than that. 1.5 is below all of these but text tokenized
# byte by byte, where the server's own "context length" message ends the redraft.
BYTES_PER_TOKEN = 1.5
MESSAGE_OVERHEAD, TEMPLATE_OVERHEAD = 8, 32  # role markers around each message; BOS and the opened model turn
# Bounds on what an upstream that ignores max_tokens, or never stops, can make us hold. A 128k-token answer at
# 4 bytes a token is 512 KiB of text; past 2 MiB the server is not writing an answer but flooding us.
MAX_TEXT_BYTES = 2 << 20
# Past this much text, progress (a snapshot of all of it, read by the preview and /v1) is published at most
# every PROGRESS_INTERVAL_S rather than a chunk: a long answer sent a byte a chunk would cost its length
# squared. An answer of a few thousand tokens is under it and shows every token.
THROTTLE_FROM_CHARS = 64 << 10
PROGRESS_INTERVAL_S = 0.05
MAX_MODELS_BYTES = 16 << 20  # /v1/models: a gateway's listing of hundreds of models is a small part of it


class ByteEstimate:
    """engine.text.prompts.TokenCounter for a model whose tokenizer we do not have (see BYTES_PER_TOKEN)."""

    def text(self, text: str) -> int:
        return math.ceil(len(text.encode()) / BYTES_PER_TOKEN)

    def messages(self, messages: list[dict[str, str]]) -> int:
        return TEMPLATE_OVERHEAD + sum(MESSAGE_OVERHEAD + self.text(m["content"]) for m in messages)


@dataclass(frozen=True)
class RemoteRequest:
    """One request to the server: path under the base URL, JSON body, and what we know of its size."""

    path: str  # /chat/completions or /completions
    body: dict
    prompt_tokens: int  # estimated; the server's usage replaces it when it sends one
    max_tokens: int | None  # None: the server's default
    limit: OutputLimit  # the stop strings, applied here too: a server may ignore them

    @property
    def is_chat(self) -> bool:
        return self.path == "/chat/completions"


def build_request(spec: dict, model: str, context: int, is_redraft: bool = False) -> RemoteRequest:
    """A spec (jobs/spec.py's kinds, checked by its RedraftSpec) -> the request. Raises RequestError.
    `is_redraft`: the server is another Redraft (its /v1/models says owned_by "redraft"), which takes the
    denoising steps as the `redraft_steps` extension; other servers are never sent it (OpenAI refuses unknown
    fields)."""
    parsed = RedraftSpec.from_dict(spec)
    max_tokens, estimate = parsed.max_tokens, ByteEstimate()
    if parsed.kind == "chat":
        messages = parsed.messages
        path, payload, prompt_tokens = "/chat/completions", {"messages": messages}, estimate.messages(messages)
    elif parsed.kind == "complete":
        path, payload, prompt_tokens = "/completions", {"prompt": parsed.prompt}, estimate.text(parsed.prompt)
    else:
        if max_tokens is None:
            max_tokens = _redraft_room(parsed, estimate)
        max_tokens = min(max_tokens, context // 2)  # a small context still leaves the prompt half of it
        messages = _redraft_messages(parsed, context - max_tokens, estimate)
        path, payload, prompt_tokens = "/chat/completions", {"messages": messages}, estimate.messages(messages)
    body = {"model": model, **payload, "stream": True, "stream_options": {"include_usage": True}}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if parsed.stop:
        body["stop"] = list(parsed.stop)
    if "seed" in spec:
        body["seed"] = parsed.seed % 2**31  # vLLM and llama.cpp honour it; others ignore it
    if is_redraft and parsed.steps is not None:
        body["redraft_steps"] = parsed.steps
    return RemoteRequest(path, body, prompt_tokens, max_tokens, OutputLimit.of(parsed))


def _redraft_room(spec: RedraftSpec, estimate: ByteEstimate) -> int:
    if spec.max_canvases is not None:
        blocks = spec.max_canvases
    elif spec.kind == "rewrite":
        blocks = math.ceil(estimate.text(spec.passage) * REWRITE_ROOM / BLOCK_TOKENS)
    else:
        blocks = 1
    return max(1, min(blocks, MAX_CANVASES)) * BLOCK_TOKENS


def _redraft_messages(spec: RedraftSpec, budget: int, estimate: ByteEstimate) -> list[dict[str, str]]:
    try:
        return build_messages(fit_prompt(estimate, redraft_prompt(spec), budget))  # the task's instruction
    except (PromptTooLongError, ValueError) as exc:
        raise RequestError(str(exc)) from exc


class RemoteGeneration(JobStream):
    """One request in flight: iterate it for progress dicts, await `result()`, or `cancel()` it (closes the
    stream; the outcome is then `cancelled`). A failure raises RemoteError from `result()`."""

    def __init__(self, engine: "RemoteEngine", request: RemoteRequest):
        super().__init__()  # bounded: a reader that stalls must not hold the text once per token
        self.engine = engine
        self.request = request
        self.answer = AnswerText(request.limit)
        self._published_at: float | None = None  # time.monotonic() of the last progress published
        self._published_chars = 0
        self.num_tokens = 0  # content chunks so far (one token each on vLLM and llama.cpp), until usage says
        self.usage: dict | None = None
        self.finish_reason: str | None = None
        self.is_waiting = True
        self._submitted = time.perf_counter()
        self._timings = {"queue_s": 0.0, "prefill_s": 0.0, "denoise_s": 0.0}
        self._num_bytes = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="remote-redraft")

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def text(self) -> str:
        return self.answer.text

    def _publish(self) -> None:
        self._push(self._progress_dict())
        self._published_at, self._published_chars = time.monotonic(), self.answer.num_chars

    def _is_due(self) -> bool:
        return (self.answer.num_chars < THROTTLE_FROM_CHARS or self._published_at is None
                or time.monotonic() - self._published_at >= PROGRESS_INTERVAL_S)

    async def _run(self) -> None:
        try:
            async with self.engine._slots:
                self.is_waiting = False
                self._timings["queue_s"] = time.perf_counter() - self._submitted
                try:
                    async with asyncio.timeout(self.engine.config.deadline_s):
                        await self._stream()
                except TimeoutError:
                    raise RemoteError(
                        f"the engine server at {self.engine.config.shown_url} did not finish its answer within "
                        f"{self.engine.config.deadline_s:g} s (--engine-deadline)"
                    ) from None
            self._settle(self._outcome_dict("done"))
        except asyncio.CancelledError:  # cancel() or the engine closing: the stream is closed by now
            self._settle(self._outcome_dict("cancelled"))
        except RemoteError as exc:
            self._settle(self.engine.config.redact(exc))
        except httpx.HTTPError as exc:
            self._settle(connection_error(exc, self.engine.config.shown_url, self.engine.config.timeout_s))
        except Exception as exc:  # a bug here must still end the redraft, with something to read
            log.exception("remote redraft failed")
            error = RemoteError(f"the remote engine failed: {type(exc).__name__}: {exc}")
            self._settle(self.engine.config.redact(error))

    async def _stream(self) -> None:
        engine, request = self.engine, self.request
        started = time.perf_counter()
        url = engine.config.request_url + request.path
        async with engine.client.stream("POST", url, json=request.body) as response:
            if response.status_code != 200:
                raise await status_error(response, engine.config.api_key is not None)
            check_stream_response(response)
            is_done = False
            async for event, data in events(lines(response.aiter_raw())):
                chunk = parse_chunk(event, data, request.is_chat)
                if chunk is DONE:
                    is_done = True
                    break
                if chunk.usage is not None:
                    self.usage = chunk.usage
                self.finish_reason = chunk.finish_reason or self.finish_reason
                if chunk.text and self._is_over_limit(chunk.text):
                    self.finish_reason = "length"
                    break
                if chunk.text:
                    if not self.num_tokens:
                        self._timings["prefill_s"] = time.perf_counter() - started
                    self.num_tokens += 1
                    if self._cut_at_stop(chunk.text):
                        break
                    if self._is_due():
                        self._publish()
            else:
                if self.finish_reason is None:
                    raise RemoteError(
                        "the engine server's stream ended before its answer was finished (truncated: no "
                        "finish_reason and no [DONE])"
                    )
            if is_done and self.finish_reason is None and self.usage is None and not self.num_tokens:
                raise RemoteError(
                    "the engine server ended the stream without an answer ([DONE] with nothing before it)"
                )
        if self.answer.num_chars != self._published_chars:  # what throttling held back
            self._publish()
        self._timings["denoise_s"] = time.perf_counter() - started - self._timings["prefill_s"]

    def _is_over_limit(self, text: str) -> bool:
        """Whether this text would take the answer past max_tokens (or the context when none was asked) or
        MAX_TEXT_BYTES: a server that ignores them, or never stops, is cut off here as at length."""
        self._num_bytes += len(text.encode())
        max_tokens = self.request.max_tokens or self.engine.context
        if self.num_tokens < max_tokens and self._num_bytes <= MAX_TEXT_BYTES:
            return False
        log.warning("the engine server at %s went on past %s; its stream is cut there", self.engine.config.shown_url,
                    f"{max_tokens} tokens" if self.num_tokens >= max_tokens else f"{MAX_TEXT_BYTES} bytes")
        return True

    def _cut_at_stop(self, piece: str) -> bool:
        """Adds a chunk, cut before the first stop string (a server that ignores `stop` still stops here)."""
        found = self.answer.append(piece)
        if found:
            self.finish_reason = "stop"
            self._publish()
        return found

    def _progress_dict(self) -> dict:
        """Engine.redraft's progress dict: a left-to-right model's text is final as it comes, so it is one
        piece of confidence 1, `committed` is all of it but a stop string's possible beginning at its end, and
        the steps count tokens against max_tokens."""
        budget = max(self.request.max_tokens or 0, self.num_tokens)
        return progress_snapshot(
            self.num_tokens, budget, 0, self.text, [[self.text, 1.0]] if self.text else [], False, False,
            num_canvases=1,
            progress={"step": self.num_tokens, "max_steps": budget},
            committed=self.request.limit.settled(self.text),
            streaming=True,
        )

    def _outcome_dict(self, status: str) -> dict:
        usage = self.usage or {}
        tokens = usage.get("completion_tokens")
        prompt_tokens = usage.get("prompt_tokens")
        # The model ended it (stop; content_filter and the like end it too), or the budget or a cancel did.
        complete = status == "done" and self.finish_reason != "length"
        return job_outcome(
            status, self.text,
            [],  # no denoising steps: a left-to-right model
            tokens if isinstance(tokens, int) else self.num_tokens,
            dict(self._timings),
            complete=complete,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else self.request.prompt_tokens,
            finish_reason="stop" if complete else "length",  # as the local engine's: "stop" exactly when complete
        )


class RemoteEngine:
    """An OpenAI-compatible server as the engine. `load` asks /v1/models for the model and its context."""

    def __init__(self, config: RemoteConfig, client: httpx.AsyncClient, model: str, context: int,
                 is_redraft: bool = False):
        self.config = config
        self.client = client
        self.model = model
        self.context = context
        self.is_redraft = is_redraft  # another Redraft server: it takes the denoising steps too
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._generations: set[RemoteGeneration] = set()
        self._closing = False

    @classmethod
    async def load(cls, config: RemoteConfig) -> "RemoteEngine":
        """Raises RemoteError (unreachable, refused key, no model to choose) with a message for the user."""
        # identity: a compressed stream could inflate a thousandfold past every byte limit here (a gzip bomb)
        headers = {"Accept-Encoding": "identity"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        client = httpx.AsyncClient(
            headers=headers,
            # A user:password in the URL goes as Basic auth, never in the URLs httpx logs at INFO ("HTTP Request:").
            auth=config.basic_auth,
            follow_redirects=False,  # the key goes to --engine-url and nowhere else
            timeout=httpx.Timeout(config.timeout_s, pool=None),  # the semaphore, not the pool, queues requests
            limits=httpx.Limits(
                max_connections=config.max_concurrency + 1, max_keepalive_connections=config.max_concurrency
            ),
        )
        try:
            async with asyncio.timeout(config.deadline_s):  # a listing trickled for ever must end too
                model, context, is_redraft = await _choose_model(client, config)
        except TimeoutError:
            await client.aclose()
            raise RemoteError(f"{config.shown_url}/models did not answer within {config.deadline_s:g} s "
                              "(--engine-deadline)") from None
        except BaseException:
            await client.aclose()
            raise
        return cls(config, client, model, context, is_redraft)

    def redraft(self, spec: dict) -> RemoteGeneration:
        """Starts the request; raises RequestError at once (nothing sent) when the spec cannot run."""
        if self._closing:
            raise RuntimeError("the engine is shutting down")
        generation = RemoteGeneration(self, build_request(spec, self.model, self.context, self.is_redraft))
        self._generations.add(generation)
        generation._task.add_done_callback(lambda _: self._generations.discard(generation))
        return generation

    @property
    def queue_length(self) -> int:
        return sum(generation.is_waiting for generation in self._generations)

    def status(self) -> dict:
        waiting = self.queue_length
        return {
            "model": self.model,
            "model_name": self.model,  # the upstream's own name for it, as the palette shows it
            "url": self.config.shown_url,
            "context": self.context,
            "running": len(self._generations) - waiting,
            "waiting": waiting,
            "max_concurrency": self.config.max_concurrency,
            "streaming": True,
            "tasks": EVERY_TASK.to_dict(),  # an instruction-following model: every task of the editor's palette
        }

    async def close(self) -> None:
        """Cancels what is in flight (closing each stream) and the connections."""
        self._closing = True
        tasks = [generation._task for generation in self._generations]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()


async def _choose_model(client: httpx.AsyncClient, config: RemoteConfig) -> tuple[str, int, bool]:
    """The model, its context, and whether the server is another Redraft."""
    try:
        async with client.stream("GET", config.request_url + "/models") as response:
            if response.status_code == 404 and not config.base_url.endswith("/v1"):
                raise RemoteError(f"{config.shown_url}/models is not found (404): the URL is the API's base, usually "
                                  "ending in /v1 (e.g. http://host:8000/v1)")
            if response.status_code != 200:
                raise config.redact(await status_error(response, config.api_key is not None))
            body = await read_capped(response, MAX_MODELS_BYTES)
            if body is None:
                raise RemoteError(f"{config.shown_url}/models answered with over {MAX_MODELS_BYTES >> 20} MiB: not a "
                                  "model list")
        listed = json.loads(body).get("data")
    except httpx.HTTPError as exc:
        raise connection_error(exc, config.shown_url, config.timeout_s) from None
    except (ValueError, AttributeError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise RemoteError(f"{config.shown_url}/models did not answer with a model list ({{\"data\": [...]}})") from None
    models = {
        entry["id"]: entry for entry in listed or [] if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }
    if not models:
        raise RemoteError(f"{config.shown_url}/models lists no model: is a model loaded, and is the URL the API's /v1?")
    names = one_line(", ".join(models))  # a gateway may list hundreds: the message is read on /healthz
    if config.model is not None:
        if config.model not in models:
            raise RemoteError(f"the engine server has no model {config.model!r}; it lists: {names}")
        model = config.model
    elif len(models) == 1:
        (model,) = models
    else:
        raise RemoteError(
            f"the engine server lists {len(models)} models ({names}): choose one with --engine-model"
        )
    entry = models[model]
    is_redraft = entry.get("owned_by") == "redraft"
    if config.context is not None:
        return model, config.context, is_redraft
    for name in ("max_model_len", "context_length"):  # vLLM's field; OpenRouter's, LiteLLM's
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return model, value, is_redraft
    log.warning("the engine server does not say %s's context; assuming %d tokens (set --engine-context)",
                model, FALLBACK_CONTEXT)
    return model, FALLBACK_CONTEXT, is_redraft
