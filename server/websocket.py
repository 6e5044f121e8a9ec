"""The `/ws/{doc}` endpoint: the Starlette adapter between a websocket and a room.

Checks that can be made before the handshake (document name, origin, token,
connection limits) are answered with an HTTP denial response carrying a JSON
error, so a client sees a status and a reason rather than a bare close.
Everything after the handshake is answered with a close code from `protocol`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from .auth import AuthError, verify_token
from .config import is_valid_doc_name
from .peer import Peer
from .protocol import CLOSE_MALFORMED, CLOSE_TOO_LARGE, CLOSE_TOKEN_EXPIRED
from .ratelimit import TokenBucket
from .services import Services

log = logging.getLogger(__name__)


def origin_allowed(websocket: WebSocket, allowed: tuple[str, ...]) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: browsers always send Origin on websocket handshakes
    host = websocket.headers.get("host", "")
    return origin in allowed or origin in (f"http://{host}", f"https://{host}")


async def deny(websocket: WebSocket, status: int, error: str, detail: str) -> None:
    await websocket.send_denial_response(JSONResponse({"error": error, "detail": detail}, status_code=status))


async def websocket_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    config = services.config
    name = websocket.path_params["doc"]
    address = websocket.client.host if websocket.client else "unknown"
    if not is_valid_doc_name(name):
        services.metrics.refused("bad_doc_name")
        return await deny(websocket, 400, "bad_doc_name", "document names are 1-128 characters of A-Z a-z 0-9 . _ -")
    if not origin_allowed(websocket, config.allowed_origins):
        services.metrics.refused("origin")
        return await deny(websocket, 403, "origin", f"origin {websocket.headers.get('origin')} is not allowed")
    try:
        grant = verify_token(config.secret, websocket.query_params.get("token"), name)
    except AuthError as exc:
        services.metrics.refused("token")
        return await deny(websocket, 401, "token", str(exc))
    if services.connections_by_address[address] >= config.max_connections_per_address:
        services.metrics.refused("address_limit")
        return await deny(websocket, 429, "too_many_connections", f"at most {config.max_connections_per_address} connections per address")
    try:
        room = await services.rooms.acquire(name)
    except Exception as exc:
        log.exception("loading %s failed", name)
        return await deny(websocket, 503, "store_unavailable", f"the document could not be loaded: {exc}")
    try:
        if len(room.peers) >= config.max_connections_per_doc:
            services.metrics.refused("doc_limit")
            return await deny(websocket, 503, "document_full", f"at most {config.max_connections_per_doc} connections per document")
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
    )
    services.connections_by_address[address] += 1
    services.metrics.connections.inc()
    expiry = None
    if grant.expires_at is not None:
        delay = max(0.0, grant.expires_at - time.time())
        expiry = asyncio.get_running_loop().call_later(
            delay, peer.close, CLOSE_TOKEN_EXPIRED, "the token has expired: reconnect with a new one"
        )
    peer.start()
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
