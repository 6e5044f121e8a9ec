"""The benchmark's baseline: a plain pycrdt-websocket server, no persistence, at ws://HOST:PORT/ws/{doc}.

Run under uvicorn with the settings `redraft serve` uses (same websocket
implementation, event loop, message limit and pings), so the two servers differ
only in what happens to an update. Rooms are keyed by the request path, as in
Redraft; GET /healthz answers 200 once the room server has started.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer, exception_logger

MAX_MESSAGE_BYTES = 1 << 20  # Redraft's max_message_bytes


def create_app():
    # Without a handler, one client leaving while a broadcast to it is in flight fails the
    # room's task group and, through it, the whole server: every later connection is refused.
    rooms = WebsocketServer(rooms_ready=True, auto_clean_rooms=True, exception_handler=exception_logger)
    websockets = ASGIServer(rooms)
    runner: list[asyncio.Task] = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(rooms, runner, receive, send)
        elif scope["type"] == "http":
            status = 200 if scope["path"] == "/healthz" else 404
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await websockets(scope, receive, send)

    return app


async def _lifespan(rooms: WebsocketServer, runner: list, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            runner.append(asyncio.create_task(rooms.start()))
            await rooms.started.wait()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await rooms.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
