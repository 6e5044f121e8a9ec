"""The answers of the OpenAI-compatible API: whole JSON bodies, and server-sent event streams of chunks.

A stream sends the text the engine has decided (`committed` in its progress: a diffusion model decides a
canvas at a time, a remote left-to-right model a token at a time) and the rest at the end, so the deltas
join into exactly the final text. `EventStream` watches the connection while it streams: when the client
goes away it stops and says so, and the caller cancels the engine job (the ASGI server alone would tell
only at the next write, which may be a canvas away).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable

from .redrafts.backends import EngineFailed

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


class Reply:
    """One answer's fixed parts (id, model, kind) and its chunks. kind: "chat" or "text" (/v1/completions)."""

    def __init__(self, kind: str, model: str, include_usage: bool = False, wants_snapshots: bool = False):
        self.kind, self.model = kind, model
        self.include_usage, self.wants_snapshots = include_usage, wants_snapshots
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_urlsafe(12)
        self.created = int(time.time())

    def whole(self, outcome: dict) -> dict:
        text, finish = outcome["text"], _finish_reason(outcome)
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {**self._head("chat.completion" if self.kind == "chat" else "text_completion"),
                "choices": [choice], "usage": _usage(outcome)}

    async def events(self, job) -> AsyncIterator[bytes]:
        """The stream of one job: text as it is decided, the rest and the finish reason, usage if asked, [DONE].
        An engine failure ends it with an error event (the openai client raises it), without [DONE]."""
        if self.kind == "chat":
            yield self._event(self._chunk({"role": "assistant", "content": ""}))
        sent = ""
        try:
            async for progress in job:
                if self.wants_snapshots and "step" in progress:
                    yield self._event(self._snapshot(progress))
                committed = progress.get("committed", "")
                if len(committed) > len(sent) and committed.startswith(sent):
                    yield self._event(self._chunk(self._text(committed[len(sent) :])))
                    sent = committed
            outcome = await job.result()
        except EngineFailed as exc:
            yield self._error(f"the engine failed: {exc}", "engine_failed")
            return
        if outcome.get("status") != "done":
            yield self._error("the engine stopped before the answer was written (shutting down?)", "engine_unavailable")
            return
        text = outcome["text"]
        if not text.startswith(sent):
            # Only a job started over elsewhere (a lost Redis worker) can do this; what was sent cannot be taken back.
            yield self._error("the answer changed after part of it was sent (the engine started the job over)",
                              "engine_failed")
            return
        if len(text) > len(sent):
            yield self._event(self._chunk(self._text(text[len(sent) :])))
        yield self._event(self._chunk({} if self.kind == "chat" else self._text(""), _finish_reason(outcome)))
        if self.include_usage:
            yield self._event({**self._head(self._chunk_object), "choices": [], "usage": _usage(outcome)})
        yield DONE

    @property
    def _chunk_object(self) -> str:
        return "chat.completion.chunk" if self.kind == "chat" else "text_completion"

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _text(self, text: str) -> dict:
        return {"content": text} if self.kind == "chat" else {"text": text}

    def _chunk(self, part: dict, finish_reason: str | None = None) -> dict:
        choice = {"index": 0, "delta": part} if self.kind == "chat" else {"index": 0, **part}
        choice.update(logprobs=None, finish_reason=finish_reason)
        chunk = {**self._head(self._chunk_object), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI: null on every chunk but the last
        return chunk

    def _snapshot(self, progress: dict) -> dict:
        """The `redraft_snapshots` extension: a chunk with no choices (stock clients skip those) and the
        current denoising snapshot (a remote left-to-right engine has no steps: those are null)."""
        snapshot = {name: progress.get(name) for name in ("step", "max_steps", "canvas_index")}
        return {**self._head(self._chunk_object), "choices": [], "redraft": {**snapshot, "text": progress.get("text", "")}}

    @staticmethod
    def _event(chunk: dict) -> bytes:
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    def _error(self, message: str, code: str) -> bytes:
        return self._event({"error": {"message": message, "type": "server_error", "param": None, "code": code}})


def _finish_reason(outcome: dict) -> str:
    return outcome.get("finish_reason") or ("stop" if outcome.get("complete", True) else "length")


def _usage(outcome: dict) -> dict:
    prompt, completion = outcome.get("prompt_tokens", 0), outcome.get("tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def disconnected(receive) -> None:
    """Returns when the client has gone (the request body was read before: only a disconnect comes now)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream:
    """An ASGI response streaming server-sent events while it watches for the client going away.
    on_close(finished) runs once: finished is True when the events ran to their end (the job has ended)."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Callable[[bool], None]):
        self.events = events
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # nginx: pass each event on, do not buffer the stream
        ]})
        pump = asyncio.ensure_future(self._pump(send))
        gone = asyncio.ensure_future(disconnected(receive))
        finished = is_gone = False
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
            is_gone = gone.done()
            if pump.done():
                finished = pump.exception() is None
                if not finished:
                    log.error("a /v1 stream failed", exc_info=pump.exception())
        finally:
            for task in (pump, gone):
                task.cancel()
            await asyncio.gather(pump, gone, return_exceptions=True)
            await self.events.aclose()
            self.on_close(finished)
        if not is_gone:  # ended (or failed, logged above) with the client still there
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send) -> None:
        async for event in self.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
