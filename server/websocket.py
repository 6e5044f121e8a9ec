"""The `/ws/{doc}` endpoint: the Starlette adapter between a websocket and a room.

Every refusal, also those decided before the handshake (document name, origin,
token, connection limits), accepts and then closes with a code and reason from
`protocol`: a browser never sees an HTTP denial's status or body (it gets a bare
1006), while a close code reaches the page and tells y-websocket whether to retry.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.websockets import WebSocket

from .auth import AuthError, origin_allowed, verify_token
from .config import DOC_NAME_RULE, is_valid_doc_name
from .peer import Peer
from .protocol import (
    CLOSE_BAD_DOC_NAME,
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_MALFORMED,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    MAX_CLOSE_REASON,
)
from .ratelimit import TokenBucket
from .services import Services
from .ws_frames import FRAME_WRITER

log = logging.getLogger(__name__)


async def refuse(websocket: WebSocket, services: Services, code: int, why: str, reason: str) -> None:
    services.metrics.refused(why)
    await websocket.accept()
    await websocket.close(code, reason[:MAX_CLOSE_REASON])


async def websocket_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    config = services.config
    name = websocket.path_params["doc"]
    address = websocket.client.host if websocket.client else "unknown"
    if not is_valid_doc_name(name):
        return await refuse(websocket, services, CLOSE_BAD_DOC_NAME, "bad_doc_name", DOC_NAME_RULE)
    if not origin_allowed(websocket.headers, config.allowed_origins):
        return await refuse(websocket, services, CLOSE_FORBIDDEN_ORIGIN, "origin",
                            f"origin {websocket.headers.get('origin')} is not allowed")
    try:
        grant = verify_token(config.secret, websocket.query_params.get("token"), name)
    except AuthError as exc:
        return await refuse(websocket, services, CLOSE_UNAUTHORIZED, "token", str(exc))
    if services.connections_by_address[address] >= config.max_connections_per_address:
        return await refuse(websocket, services, CLOSE_RATE_LIMITED, "address_limit",
                            f"at most {config.max_connections_per_address} connections per address")
    try:
        room = await services.rooms.acquire(name)
    except Exception as exc:
        log.exception("loading %s failed", name)
        return await refuse(websocket, services, CLOSE_UNAVAILABLE, "store_unavailable",
                            f"the document could not be loaded: {exc}")
    try:
        if len(room.peers) >= config.max_connections_per_doc:
            return await refuse(websocket, services, CLOSE_UNAVAILABLE, "doc_limit",
                                f"at most {config.max_connections_per_doc} connections per document")
        await _serve(websocket, services, room, grant, address)
    finally:
        services.rooms.release(room)


async def _serve(websocket: WebSocket, services: Services, room, grant, address: str) -> None:
    config = services.config
    await websocket.accept()
    peer = Peer(
        send=websocket.send_bytes,
        close=lambda code, reason: websocket.close(code, reason),
        grant=grant,
        address=address,
        max_send_queue=config.max_send_queue,
        bucket=TokenBucket(config.max_messages_per_s, config.max_message_burst),
        metrics=services.metrics,
        max_send_queue_bytes=config.max_send_queue_bytes,
        write_now=_frame_writer(websocket),
    )
    services.connections_by_address[address] += 1
    services.metrics.connections.inc()
    expiry = None
    if grant.expires_at is not None:
        delay = max(0.0, grant.expires_at - time.time())
        expiry = asyncio.get_running_loop().call_later(
            delay, peer.close, CLOSE_UNAUTHORIZED, "the token has expired: reconnect with a new one"
        )
    room.join(peer)
    try:
        await _receive_loop(websocket, room, peer, config.max_message_bytes)
    finally:
        if expiry is not None:
            expiry.cancel()
        room.leave(peer)
        await peer.stop()
        services.connections_by_address[address] -= 1
        if services.connections_by_address[address] <= 0:
            del services.connections_by_address[address]
        services.metrics.connections.dec()


def _frame_writer(websocket: WebSocket):
    """The server's synchronous frame writer (`ws_frames`), or None under a server without one."""
    writer = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
    return writer.write if writer is not None else None


async def _receive_loop(websocket: WebSocket, room, peer: Peer, max_message_bytes: int) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("bytes")
        if frame is None:
            peer.close(CLOSE_MALFORMED, "text frames are not part of the y-websocket protocol")
        elif len(frame) > max_message_bytes:
            room.metrics.refused("message_too_big")
            peer.close(CLOSE_TOO_LARGE, f"messages are limited to {max_message_bytes} bytes")
        elif peer.is_open:
            room.handle(peer, frame)
