"""The `/ws/{doc}` endpoint: the Starlette adapter between a websocket and a room.

After the checks and the handshake the room takes the connection over through the server's link
(`ws_link`) and this coroutine returns; under an ASGI server without one it stays and relays messages.

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
from .ws_link import LINK, Link, message_data

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
    if len(room.peers) >= config.max_connections_per_doc:
        services.rooms.release(room)
        return await refuse(websocket, services, CLOSE_UNAVAILABLE, "doc_limit",
                            f"at most {config.max_connections_per_doc} connections per document")
    try:
        await websocket.accept()
    except BaseException:
        services.rooms.release(room)
        raise
    client = Client(services, room, grant, address)
    link: Link | None = websocket.scope.get("extensions", {}).get(LINK)
    if link is not None:  # under `redraft serve`: the connection goes on without this task (ws_link)
        client.open(link.send, link.close, link.write, link.pause_reading, link.resume_reading)
        link.take_over(client.on_message, client.on_closed)
        return
    reading = asyncio.Event()
    reading.set()
    client.open(websocket.send_bytes, lambda code, reason: websocket.close(code, reason), None,
                reading.clear, reading.set)
    try:
        await relay(websocket, client, reading)
    finally:
        await client.closed()


async def relay(websocket: WebSocket, client: "Client", reading: asyncio.Event) -> None:
    """Plain ASGI: hands each message to the client until the client goes. While `reading` is clear (the room
    is backlogged: Room.when_drained) it waits, still hearing a client that leaves; one more message may
    arrive meanwhile and waits with it (the ASGI server reads no further until it is received), and a
    goodbye behind that one is heard once reading resumes."""
    receiving: asyncio.Future | None = None
    resumed: asyncio.Future | None = None
    try:
        while True:
            message = await (receiving or websocket.receive())
            receiving = None
            if message["type"] == "websocket.disconnect":
                return
            client.on_message(message_data(message))
            if not reading.is_set():
                receiving = asyncio.ensure_future(websocket.receive())
                resumed = asyncio.ensure_future(reading.wait())
                await asyncio.wait((receiving, resumed), return_when=asyncio.FIRST_COMPLETED)
                if receiving.done() and receiving.result()["type"] == "websocket.disconnect":
                    return
                await resumed
    finally:
        for future in (receiving, resumed):
            if future is not None:
                future.cancel()


class Client:
    """One accepted connection to a room: its peer, what it counts against its address and the server, its
    token's expiry, and where its messages go. Holds nothing of the websocket's framework."""

    def __init__(self, services: Services, room, grant, address: str):
        self.services = services
        self.room = room
        self.grant = grant
        self.address = address
        self.peer: Peer | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._is_closed = False
        self._pause_reading = self._resume_reading = None
        self._is_paused = False

    def open(self, send, close, write_now, pause_reading, resume_reading) -> None:
        """Joins the room with a peer that sends through `send` (awaited), `write_now` (immediate, optional)
        and closes through `close`; `pause_reading` and `resume_reading` stop and restart the messages."""
        self._pause_reading, self._resume_reading = pause_reading, resume_reading
        services, config = self.services, self.services.config
        self.peer = peer = Peer(
            send=send,
            close=close,
            grant=self.grant,
            address=self.address,
            max_send_queue=config.max_send_queue,
            bucket=TokenBucket(config.max_messages_per_s, config.max_message_burst),
            metrics=services.metrics,
            max_send_queue_bytes=config.max_send_queue_bytes,
            write_now=write_now,
        )
        services.connections_by_address[self.address] += 1
        services.metrics.connections.inc()
        if self.grant.expires_at is not None:
            delay = max(0.0, self.grant.expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(
                delay, peer.close, CLOSE_UNAUTHORIZED, "the token has expired: reconnect with a new one"
            )
        self.room.join(peer)

    def on_message(self, frame: bytes | str) -> None:
        peer, room = self.peer, self.room
        max_message_bytes = self.services.config.max_message_bytes
        if isinstance(frame, str):
            peer.close(CLOSE_MALFORMED, "text frames are not part of the y-websocket protocol")
        elif len(frame) > max_message_bytes:
            room.metrics.refused("message_too_big")
            peer.close(CLOSE_TOO_LARGE, f"messages are limited to {max_message_bytes} bytes")
        elif peer.is_open:
            unstored = room.unstored_bytes
            room.handle(peer, frame)
            if room.unstored_bytes > unstored and room.is_backlogged and not self._is_paused:
                # It added to a backlog the store has not caught up with (Room.when_drained): nothing more is
                # read from it until the store has. Connections that add nothing (presence, a viewer) go on.
                self._is_paused = True
                room.metrics.reads_paused.inc()
                self._pause_reading()
                room.when_drained(self._resume)

    def _resume(self) -> None:
        self._is_paused = False
        if not self._is_closed:
            self._resume_reading()

    def on_closed(self) -> None:
        """The link's end of the connection: the rest of the goodbye is awaited in a task of its own."""
        task = asyncio.get_running_loop().create_task(self.closed())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def closed(self) -> None:
        """Leaves the room and gives back what the connection held; once, however the connection ended."""
        if self._is_closed:
            return
        self._is_closed = True
        services, address = self.services, self.address
        try:
            if self._expiry is not None:
                self._expiry.cancel()
            self.room.leave(self.peer)
            await self.peer.stop()
            services.connections_by_address[address] -= 1
            if services.connections_by_address[address] <= 0:
                del services.connections_by_address[address]
            services.metrics.connections.dec()
        finally:
            services.rooms.release(self.room)


_closing: set[asyncio.Task] = set()  # goodbyes under way: the loop keeps only weak references to tasks
