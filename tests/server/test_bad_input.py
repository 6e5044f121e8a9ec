"""Bad input gets a clear answer and the room keeps serving everyone else, replicas equal."""

from __future__ import annotations

import time

import httpx
import pytest

from server.auth import mint_token
from server.awareness import AwarenessEntry, encode_awareness_update
from server.protocol import (
    CLOSE_BAD_DOC_NAME,
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_INVALID_UPDATE,
    CLOSE_MALFORMED,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    SYNC_UPDATE,
    encode_awareness,
    encode_sync,
)
from tests.support.node import NodePeer
from tests.support.processes import ServerProcess, wait_until
from tests.support.raw import close_of, open_raw, send_until_closed, server_text

SECRET = "bad-input-test-secret-0123456789"
LIMITS = (
    "--secret", SECRET,
    "--max-message-bytes", "65536",
    "--max-doc-bytes", "100000",
    "--max-messages-per-s", "50",
    "--max-message-burst", "100",
    "--max-send-queue", "20",
)


def token(doc: str, role: str = "edit", ttl: float | None = None) -> str:
    return mint_token(SECRET, doc, role, ttl)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("bad-input"), extra_args=LIMITS).start()
    yield proc
    proc.stop()


@pytest.fixture
def room(server, request):
    """Two well-behaved Node clients on a fresh document, typing before and after."""
    doc = request.node.name.replace("[", "-").replace("]", "").replace(" ", "")[:100]
    writer = NodePeer(server.ws_url, doc, params={"token": token(doc)})
    reader = NodePeer(server.ws_url, doc, params={"token": token(doc)})
    writer.wait_synced()
    reader.wait_synced()
    writer.insert(0, "before 😀 ")
    reader.wait_text("before 😀 ")
    yield doc, writer, reader
    # The room still serves its clients, and every replica is equal.
    writer.insert(len("before 😀 "), "after")
    reader.wait_text(writer.text)
    assert server_text(server.ws_url, doc, token(doc)) == writer.text == reader.text
    writer.close()
    reader.close()


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"\x00\x02\x10\x01", "runs past the frame end"),
        (b"\x00\x02\x08\x01\x01\x05\x00\x1f\x01\x01c", "unknown content type 31"),
        (b"\x07\x00", "unknown message type 7"),
        (b"\x00\x09\x00", "unknown sync message type 9"),
        (b"\x01\x05\x01\x01\x01\x01{", "awareness state is not JSON"),
        (b"", "truncated"),
    ],
    ids=["truncated", "garbage-update", "unknown-type", "unknown-sync-type", "bad-awareness", "empty"],
)
def test_malformed_frames_close_with_reason(server, room, frame, reason):
    doc, _, _ = room
    with open_raw(server.ws_url, doc, token(doc)) as ws:
        ws.send(frame)
        code, text = close_of(ws)
    assert code == CLOSE_MALFORMED
    assert reason in text


def test_text_frames_are_refused(server, room):
    doc, _, _ = room
    with open_raw(server.ws_url, doc, token(doc)) as ws:
        ws.send("hello")
        assert close_of(ws) == (CLOSE_MALFORMED, "text frames are not part of the y-websocket protocol")


def test_oversized_message(server, room):
    doc, _, _ = room
    with open_raw(server.ws_url, doc, token(doc), max_size=None) as ws:
        ws.send(encode_sync(SYNC_UPDATE, b"\x00" * 70_000))
        assert close_of(ws) == (CLOSE_TOO_LARGE, "messages are limited to 65536 bytes")


def test_document_size_limit(server, room):
    doc, writer, reader = room
    bully = NodePeer(server.ws_url, doc, params={"token": token(doc)})
    try:
        bully.wait_synced()
        bully.insert(0, "x" * 60_000)  # each under the message limit; together over the doc limit
        reader.wait_text("x" * 60_000 + "before 😀 ")
        bully.insert(0, "z" * 60_000)
        wait_until(lambda: any(e.get("code") == CLOSE_TOO_LARGE for e in bully.events()), 10,
                   "the over-size client to be closed")
        assert "z" not in reader.text
    finally:
        bully.close()
    writer.delete(0, 60_000)
    reader.wait_text("before 😀 ")


def test_surrogate_split_is_refused(server, room):
    doc, writer, reader = room
    splitter = NodePeer(server.ws_url, doc, params={"token": token(doc)})
    try:
        splitter.wait_synced()
        splitter.wait_text(writer.text)
        # Index 8 falls between the two UTF-16 halves of the emoji in "before 😀 ".
        splitter.insert(8, "x")
        wait_until(lambda: any(e.get("code") == CLOSE_INVALID_UPDATE for e in splitter.events()), 10,
                   "the splitting client to be closed")
        closes = [e for e in splitter.events() if e.get("code") == CLOSE_INVALID_UPDATE]
        assert "surrogate pair" in closes[0]["reason"]
    finally:
        splitter.close()
    assert server_text(server.ws_url, doc, token(doc)) == "before 😀 "


def test_rate_limit(server, room):
    doc, _, _ = room
    with open_raw(server.ws_url, doc, token(doc)) as ws:
        # Awareness updates: relayed to others, never answered. The burst is 100, so the server
        # closes the connection part-way through; the loop stops there.
        flood = (encode_awareness(encode_awareness_update([AwarenessEntry(4242, clock, "{}")]))
                 for clock in range(150))
        sent = send_until_closed(ws, flood)
        code, reason = close_of(ws)
    assert sent > 100  # the burst went through before the limit closed it
    assert code == CLOSE_RATE_LIMITED
    assert "too many messages" in reason


def test_slow_client_is_dropped_without_stalling_others(tmp_path, node_peers):
    # A server of its own: the flood below is some 300 messages, past the shared server's rate limit.
    proc = ServerProcess(tmp_path, extra_args=("--max-send-queue", "20")).start()
    try:
        writer, reader = node_peers(proc.ws_url, "flood"), node_peers(proc.ws_url, "flood")
        writer.wait_synced()
        reader.wait_synced()
        # A client that never reads: once the kernel's socket buffers (autotuned up to tcp_wmem's 4 MB) and
        # the transport's 64 KiB are full, frames wait in its queue, which overflows. 30 KB inserts, each
        # deleted again so the document stays small, go on until then (at most 12 MB); the reader gets every
        # edit meanwhile.
        with open_raw(proc.ws_url, "flood", max_queue=1) as stalled:
            for i in range(400):
                writer.insert(0, f"{i:03d}" + "y" * 30_000)
                writer.delete(0, 30_003)
                if i % 20 == 19 and _slow_closes(proc) > 0:
                    break
            writer.insert(0, "after the flood")
            reader.wait_text("after the flood", timeout=20)
            wait_until(lambda: _slow_closes(proc) > 0, 20, "the stalled client to be disconnected")
            stalled.close_timeout = 1
    finally:
        proc.stop()


def _slow_closes(server) -> int:
    metrics = httpx.get(server.http_url + "/metrics").text
    for line in metrics.splitlines():
        if line.startswith('redraft_refusals_total{reason="slow_client"}'):
            return int(float(line.split()[-1]))
    return 0


def test_read_only_client_is_told_and_changes_nothing(server, room):
    doc, writer, reader = room
    viewer = NodePeer(server.ws_url, doc, params={"token": token(doc, "read")})
    try:
        viewer.wait_synced()
        viewer.wait_text("before 😀 ")
        viewer.insert(0, "vandal ")
        wait_until(lambda: any("read-only" in e.get("message", "") for e in viewer.events()), 10,
                   "the permission-denied notice")
        # It still receives everything others type.
        writer.insert(0, ">")
        reader.wait_text(">before 😀 ")
        # Its own edit stays local (where it lands beside ">" depends on the client ids).
        wait_until(lambda: viewer.text in ("vandal >before 😀 ", ">vandal before 😀 "), 10,
                   "the viewer to receive the writer's edit")
        writer.delete(0, 1)
        reader.wait_text("before 😀 ")
        assert all(e["type"] != "close" for e in viewer.events())
    finally:
        viewer.close()


def test_expired_token_closes_the_session(server, room):
    doc, _, _ = room
    with open_raw(server.ws_url, doc, token(doc, ttl=1.5)) as ws:
        started = time.monotonic()
        code, reason = close_of(ws, timeout=10)
    assert code == CLOSE_UNAUTHORIZED and "expired" in reason
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "path, tok, code, reason",
    [
        ("bad%20name", "valid", CLOSE_BAD_DOC_NAME, "document names are 1-128 characters"),
        ("x" * 129, "valid", CLOSE_BAD_DOC_NAME, "document names are 1-128 characters"),
        ("notes", None, CLOSE_UNAUTHORIZED, "needs a share token"),
        ("notes", "nonsense", CLOSE_UNAUTHORIZED, "signature is not valid"),
        ("notes", mint_token(SECRET, "other", "edit", None), CLOSE_UNAUTHORIZED, "for document 'other'"),
        ("notes", mint_token(SECRET, "notes", "edit", -1), CLOSE_UNAUTHORIZED, "expired"),
    ],
    ids=["space", "too-long", "missing-token", "garbage-token", "wrong-doc", "expired"],
)
def test_refusals_before_joining(server, path, tok, code, reason):
    if tok == "valid":
        tok = mint_token(SECRET, "*", "edit", None)
    with open_raw(server.ws_url, path, tok) as ws:
        got_code, got_reason = close_of(ws)
    assert got_code == code and reason in got_reason


def test_foreign_origin_is_refused(server):
    with open_raw(server.ws_url, "notes", token("notes"), origin="https://evil.example") as ws:
        assert close_of(ws) == (CLOSE_FORBIDDEN_ORIGIN, "origin https://evil.example is not allowed")


def test_connection_limits(tmp_path, node_peers):
    proc = ServerProcess(tmp_path, extra_args=("--max-connections-per-doc", "2",
                                               "--max-connections-per-address", "3")).start()
    try:
        a = node_peers(proc.ws_url, "full")
        b = node_peers(proc.ws_url, "full")
        a.wait_synced()
        b.wait_synced()
        with open_raw(proc.ws_url, "full") as ws:
            assert close_of(ws) == (CLOSE_UNAVAILABLE, "at most 2 connections per document")
        with open_raw(proc.ws_url, "other"):
            with open_raw(proc.ws_url, "third") as crowded:
                assert close_of(crowded) == (CLOSE_RATE_LIMITED, "at most 3 connections per address")
        a.insert(0, "still fine")
        b.wait_text("still fine")
    finally:
        proc.stop()
