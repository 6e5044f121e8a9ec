"""Reading an OpenAI-compatible server's answers: server-sent events, chunks, and errors as one line.

Every way a remote engine can fail becomes a `RemoteError` whose text is a sentence the editor shows as it
is: refused connection, timeout, a refused key, a 4xx/5xx with the server's own message, an error event
mid-stream, a chunk that is not JSON, a stream that stops before it says it is finished.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

MAX_MESSAGE_CHARS = 300  # of an upstream message quoted in ours: a 5xx's HTML page is no message
MAX_ERROR_BODY_BYTES = 64 << 10  # read of a failed response's body
# One line of the event stream. A chunk of one token is ~300 bytes of JSON; httpx's aiter_lines would buffer a
# line without end whole, so an upstream that never sends a newline would fill the memory.
MAX_LINE_BYTES = 1 << 20
LINE_END = re.compile(rb"\r\n|\r|\n")


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


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body as sent (no decompression: we ask for identity), or None past max_bytes."""
    body = b""
    async for piece in response.aiter_raw():
        body += piece
        if len(body) > max_bytes:
            return None
    return body


async def status_error(response: httpx.Response, has_key: bool) -> RemoteError:
    """A non-2xx answer, with the server's own message (OpenAI's {"error": {"message"}} or close to it)."""
    body = b""
    async for piece in response.aiter_raw():
        body += piece
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    message = upstream_message(body)
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if response.is_redirect:
        # Not followed: the key is for --engine-url, not for wherever a server (or whoever took it over) points.
        target = _shown(response.headers.get("location"))
        return RemoteError(f"the engine server answered {status}, a redirect to {target}"
                           ": redirects are not followed, so set --engine-url to the address it points to")
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


def check_stream_response(response: httpx.Response) -> None:
    """Raises RemoteError unless a 200 is an uncompressed event stream (an HTML page, a proxy's login page or a
    JSON answer from a server that ignored stream: true would otherwise read as a stream cut short)."""
    kind = response.headers.get("content-type")
    if kind is not None and kind.split(";")[0].strip().lower() != "text/event-stream":
        raise RemoteError(f"the engine server answered {one_line(kind, 60)}, not a stream of events "
                          "(text/event-stream): is --engine-url the API's base, e.g. http://host:8000/v1?")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise RemoteError(f"the engine server compressed its stream ({one_line(encoding, 40)}) though asked not to")


def _shown(location: str | None) -> str:
    """A redirect's target without its user:password or query (either may hold a secret)."""
    if not location:
        return "nowhere (no Location)"
    parts = urlsplit(location)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if host else ""
    return one_line(urlunsplit((parts.scheme, netloc, parts.path, "", "")) or "?", 120)


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


async def lines(chunks: AsyncIterator[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[str]:
    """The lines of a byte stream without their ends (\\n, \\r\\n or \\r, as server-sent events may end them).
    Raises RemoteError for a line over max_line_bytes rather than buffering it whole. Each byte is scanned
    once and the buffer only appended to: a line trickled a byte a read costs no more than one sent whole."""
    pending, start, scan = bytearray(), 0, 0  # start: of the current line; scan: where to look for its end
    async for chunk in chunks:
        pending += chunk
        while (end := LINE_END.search(pending, scan)) is not None:
            if end.group() == b"\r" and end.end() == len(pending):
                scan = end.start()  # a \r whose \n may come in the next chunk
                break
            yield _line(pending[start : end.start()], max_line_bytes)
            start = scan = end.end()
        else:
            scan = len(pending)
        if len(pending) - start > max_line_bytes:
            raise _long_line(max_line_bytes)
        if start > len(pending) // 2:  # drop the lines read, when that halves the buffer: amortised O(1)
            del pending[:start]
            scan, start = scan - start, 0
    if start < len(pending):
        yield _line(bytes(pending[start:]).rstrip(b"\r"), max_line_bytes)


def _line(raw: bytes | bytearray, max_line_bytes: int) -> str:
    if len(raw) > max_line_bytes:
        raise _long_line(max_line_bytes)
    return raw.decode("utf-8", "replace")


def _long_line(max_line_bytes: int) -> RemoteError:
    return RemoteError(
        f"the engine server sent a line of over {max_line_bytes >> 10} KiB without its end: not an event stream"
    )


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
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
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
