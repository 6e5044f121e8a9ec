"""Reading an OpenAI-compatible server's answers: server-sent events, chunks, and errors as one line.

Every way a remote engine can fail becomes a `RemoteError` whose text is a sentence the editor shows as it
is: refused connection, timeout, a refused key, a 4xx/5xx with the server's own message, an error event
mid-stream, a chunk that is not JSON, a stream that stops before it says it is finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

MAX_MESSAGE_CHARS = 300  # of an upstream message quoted in ours: a 5xx's HTML page is no message
MAX_ERROR_BODY_BYTES = 64 << 10  # read of a failed response's body


class RemoteError(Exception):
    """A remote engine request that did not finish; str() is one line for the user."""


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def connection_error(exc: httpx.HTTPError, base_url: str, timeout_s: float) -> RemoteError:
    """httpx's transport errors, as a user reads them."""
    if isinstance(exc, httpx.ConnectTimeout):
        return RemoteError(
            f"could not connect to the engine server at {base_url} within {timeout_s:g} s (--engine-timeout)"
        )
    if isinstance(exc, httpx.ConnectError):
        return RemoteError(f"cannot connect to the engine server at {base_url}: {_os_reason(exc)}")
    if isinstance(exc, httpx.TimeoutException):
        return RemoteError(f"the engine server at {base_url} sent nothing for {timeout_s:g} s (--engine-timeout)")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RemoteError(
            f"the engine server at {base_url} broke the connection off before its answer was finished "
            f"(truncated stream: {one_line(str(exc) or type(exc).__name__, 120)})"
        )
    return RemoteError(f"talking to the engine server at {base_url} failed: {one_line(str(exc) or type(exc).__name__)}")


def _os_reason(exc: BaseException) -> str:
    """The OS's reason under httpx's "All connection attempts failed": "connection refused", "name or
    service not known"..."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and isinstance(seen.errno, int):
            # errno > 0: the OS's text ("connection refused"); a resolver's negative code has its own text
            return (os.strerror(seen.errno) if seen.errno > 0 else str(seen.strerror or seen)).lower()
        seen = seen.__cause__ or seen.__context__
    return one_line(str(exc) or "connection failed").lower()


async def status_error(response: httpx.Response, has_key: bool) -> RemoteError:
    """A non-2xx answer, with the server's own message (OpenAI's {"error": {"message"}} or close to it)."""
    body = b""
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    message = upstream_message(body)
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if response.status_code == 401:
        if not has_key:
            return RemoteError(
                f"the engine server wants an API key ({status}): set REDRAFT_ENGINE_API_KEY or --engine-api-key-file"
            )
        return RemoteError(
            f"the engine server refused the API key ({status}: {message}): the key in REDRAFT_ENGINE_API_KEY or "
            "--engine-api-key-file is wrong"
        )
    return RemoteError(f"the engine server answered {status}: {message}")


def upstream_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return one_line(text) if text else "no message"
    return one_line(error_text(data)) if isinstance(data, dict) else one_line(body.decode("utf-8", "replace"))


def error_text(data: dict) -> str:
    """The message of OpenAI's {"error": {"message"}} (vLLM, llama.cpp), {"error": "..."} (Ollama) or
    {"detail": ...} (FastAPI), else the JSON itself."""
    error = data.get("error", data.get("detail"))
    if isinstance(error, dict):
        message = error.get("message") or json.dumps(error)
        code = error.get("code")
        return f"{message} (code {code})" if code not in (None, "") and str(code) not in message else str(message)
    if error is not None:
        return str(error)
    return json.dumps(data)


@dataclass
class Chunk:
    """What one streamed chunk adds: text, the finish reason once, usage (the last chunk, when asked)."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict | None = None


DONE = object()  # the `data: [DONE]` sentinel


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as (event, data): data lines joined, comments (keep-alives) skipped."""
    event, data = "message", []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:  # a last event without its blank line
        yield event, "\n".join(data)


def parse_chunk(event: str, data: str, is_chat: bool):
    """One event -> Chunk, or DONE; raises RemoteError for an error event or data that is not a chunk."""
    if data.strip() == "[DONE]":
        return DONE
    try:
        chunk = json.loads(data)
    except ValueError:
        raise RemoteError(f"the engine server sent a chunk that is not JSON: {one_line(data, 80)!r}") from None
    if event == "error" or (isinstance(chunk, dict) and "error" in chunk):
        message = error_text(chunk) if isinstance(chunk, dict) else str(chunk)
        raise RemoteError(f"the engine server failed mid-stream: {one_line(message)}")
    if not isinstance(chunk, dict) or not isinstance(chunk.get("choices", []), list):
        raise RemoteError(f"the engine server sent a chunk that is not a completion chunk: {one_line(data, 80)!r}")
    parsed = Chunk(usage=chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None)
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue  # we ask for one choice (n=1)
        if is_chat:
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
        else:
            content = choice.get("text")
        parsed.text += content if isinstance(content, str) else ""
        parsed.finish_reason = choice.get("finish_reason") or parsed.finish_reason
    return parsed
