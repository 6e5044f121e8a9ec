"""A small OpenAI-compatible server that misbehaves on purpose, for the remote engine's failure tests.

Real servers (Redraft's own endpoint, llama.cpp) cover the happy path; this one makes each failure mode
happen on demand, which no real server does: a 401, a 5xx, a stream that stops early or breaks off, an
error event or a chunk that is not JSON mid-stream, silence past the client's timeout, and a stream that
waits until the client hangs up (to prove that cancel closes it). Streams are chunked HTTP/1.1 server-sent
events as vLLM and llama.cpp send them. Runs on a thread of the test process; `mode` and the other
attributes may be changed between requests.
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.processes import free_port

MODES = (
    "ok",  # the reply in chunks, finish_reason "stop", a usage chunk, [DONE]
    "length",  # as ok, with finish_reason "length"
    "status",  # an HTTP error before the stream: status_code, with error_message in OpenAI's shape
    "slow_headers",  # nothing for delay_s before the answer starts
    "slow_chunks",  # the first chunk, then nothing for delay_s
    "error_mid_stream",  # two chunks, then vLLM's error event {"error": {..., "code": 500}}
    "truncated",  # two chunks, then a clean end with no finish_reason and no [DONE]
    "cut",  # two chunks, then the connection closed mid-body (no final chunk)
    "bad_json",  # one chunk, then `data: {not json`
    "hang",  # one chunk, then keep-alive comments until the client hangs up (sets `disconnected`)
    # hostile or broken upstreams: each would hold a redraft, or the memory, for ever if nothing bounded it
    "endless",  # ignores max_tokens: one-token chunks until the client hangs up (sets `disconnected`)
    "huge_chunk",  # one chunk of huge_bytes of text, then finish_reason "stop" and [DONE]
    "long_line",  # `data: ` and then bytes without a newline until the client hangs up
    "trickle",  # one chunk, then one byte of a keep-alive comment every delay_s until the client hangs up
    "redirect",  # 307 to redirect_to (the key would go along if it were followed)
    "html",  # 200 with an HTML page, as a proxy's login page
    "gzip",  # the stream compressed with Content-Encoding: gzip though the client asked for identity
)
MODEL = "fault-model"
MAX_ENDLESS = 200_000  # chunks of an endless stream (bytes / 64 of a long line) before it ends all the same


class FaultServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.mode = "ok"
        self.reply = ["A ", "better ", "sentence."]
        self.api_key: str | None = None  # when set, `Authorization: Bearer <key>` is required
        self.models: list[dict] = [{"id": MODEL, "object": "model", "owned_by": "tests", "max_model_len": 2048}]
        self.status_code, self.error_message = 500, "the GPU caught fire"
        self.delay_s = 5.0
        self.huge_bytes = 3 << 20
        self.redirect_to = "http://user:pw@elsewhere.example/v1/chat/completions?key=sk-leak"
        self.num_sent = 0  # bytes of the body sent in the endless, long_line and trickle modes
        self.is_models_trickled = False  # /v1/models: headers, then a byte every delay_s until the client hangs up
        self.chunk_delay_s = 0.0  # between two chunks of a well-behaved stream (so that previews show)
        self.requests: list[dict] = []  # {"path", "headers", "body"} of each request, in order
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnected = threading.Event()  # a "hang" stream's client hung up
        self.stream_started = threading.Event()  # a "hang" stream sent its first chunk
        self._lock = threading.Lock()
        self._is_stopped = False
        self._connections: set = set()  # open sockets, closed by stop() like a server that went away
        # bound at start(): until then the port refuses connections, like a server that is not up yet
        self._server = _Server(("127.0.0.1", self.port), _handler(self), bind_and_activate=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-faults", daemon=True)

    def start(self) -> "FaultServer":
        self._server.server_bind()
        self._server.server_activate()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Closes the listening socket and every open connection (also mid-test: the server went away)."""
        if self._is_stopped:
            return
        self._is_stopped = True
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread.ident is not None:
            self._thread.join(5)

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up is what some tests do
            super().handle_error(request, client_address)


def _handler(faults: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with faults._lock:
                faults._connections.add(self.connection)

        def finish(self) -> None:
            with faults._lock:
                faults._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:  # the client hung up
                pass

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models" and faults.is_models_trickled:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while True:
                        self._send(b" ")
                        time.sleep(faults.delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    faults.disconnected.set()
                    self.close_connection = True
            elif self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": faults.models})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found", "code": 404}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with faults._lock:
                faults.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                faults.in_flight += 1
                faults.max_in_flight = max(faults.max_in_flight, faults.in_flight)
            try:
                if self._authorised():
                    self._completion(body, is_chat=self.path.endswith("/chat/completions"))
            finally:
                with faults._lock:
                    faults.in_flight -= 1

        def _authorised(self) -> bool:
            if faults.api_key is None or self.headers.get("Authorization") == f"Bearer {faults.api_key}":
                return True
            self._json(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})
            return False

        def _completion(self, body: dict, is_chat: bool) -> None:
            mode = faults.mode
            if mode == "status":
                self._json(faults.status_code, {"error": {"message": faults.error_message, "type": "server_error",
                                                          "code": faults.status_code}})
                return
            pieces = faults.reply
            if mode == "redirect":
                self.send_response(307)
                self.send_header("Location", faults.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "html":
                page = b"<html><body><form>Sign in to the proxy</form></body></html>\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if mode == "gzip":
                page = gzip.compress(b"data: " + json.dumps(_chunk("A ", is_chat)).encode() + b"\n\n")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            try:
                if mode == "slow_headers":
                    time.sleep(faults.delay_s)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if mode in ("ok", "length", "slow_headers"):
                    for piece in pieces:
                        self._event(_chunk(piece, is_chat))
                        time.sleep(faults.chunk_delay_s)
                    self._event(_chunk("", is_chat, finish="length" if mode == "length" else "stop"))
                    self._event({**_chunk("", is_chat), "choices": [], "usage": _usage(body, len(pieces))})
                    self._send(b"data: [DONE]\n\n")
                elif mode == "slow_chunks":
                    self._event(_chunk(pieces[0], is_chat))
                    time.sleep(faults.delay_s)
                elif mode == "error_mid_stream":
                    for piece in pieces[:2]:
                        self._event(_chunk(piece, is_chat))
                    self._event({"error": {"message": "CUDA error: an illegal memory access was encountered",
                                           "type": "InternalServerError", "param": None, "code": 500}})
                elif mode == "truncated":
                    for piece in pieces[:2]:
                        self._event(_chunk(piece, is_chat))
                elif mode == "cut":
                    for piece in pieces[:2]:
                        self._event(_chunk(piece, is_chat))
                    self.close_connection = True
                    return  # no terminating chunk: the body is incomplete
                elif mode == "bad_json":
                    self._event(_chunk(pieces[0], is_chat))
                    self._send(b'data: {"choices": [{"delta": {"content": "x"\n\n')
                elif mode == "endless":
                    while faults.num_sent < MAX_ENDLESS:  # bounded, so that a client without the fix ends too
                        self._event(_chunk("la ", is_chat))
                        faults.num_sent += 1
                elif mode == "huge_chunk":
                    self._event(_chunk("x" * faults.huge_bytes, is_chat))
                    self._event(_chunk("", is_chat, finish="stop"))
                    self._send(b"data: [DONE]\n\n")
                elif mode == "long_line":
                    self._send(b"data: ")
                    while faults.num_sent < MAX_ENDLESS * 1024:  # 200 MB
                        self._send(b"x" * 65536)
                        faults.num_sent += 65536
                elif mode == "trickle":
                    self._event(_chunk(pieces[0], is_chat))
                    self._send(b":")
                    while True:
                        time.sleep(faults.delay_s)
                        self._send(b" ")
                        faults.num_sent += 1
                elif mode == "hang":
                    self._event(_chunk(pieces[0], is_chat))
                    faults.stream_started.set()
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        time.sleep(0.05)
                        self._send(b": keep-alive\n\n")
                    return
                self._send(b"")  # the terminating chunk
            except (BrokenPipeError, ConnectionResetError):
                faults.disconnected.set()
                self.close_connection = True

        def _event(self, data: dict) -> None:
            self._send(b"data: " + json.dumps(data).encode() + b"\n\n")

        def _send(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _json(self, status: int, data: dict) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def _chunk(piece: str, is_chat: bool, finish: str | None = None) -> dict:
    if is_chat:
        choice = {"index": 0, "delta": {"content": piece} if piece or finish is None else {}, "finish_reason": finish}
        return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                "choices": [choice]}
    return {"id": "cmpl-fault", "object": "text_completion", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "text": piece, "finish_reason": finish}]}


def _usage(body: dict, completion_tokens: int) -> dict:
    prompt = body.get("prompt") or " ".join(m.get("content", "") for m in body.get("messages", []))
    prompt_tokens = len(prompt.split())  # words: a stand-in the tests can predict
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
