"""A Redraft server inside the test's own event loop, under uvicorn as `redraft serve` runs it, so a test can
look at the app (its rooms, store and metrics) while real websocket clients talk to it."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import uvicorn
from pycrdt import Doc, Text

from redraft.cli import websocket_options
from server.app import create_app
from server.config import ServerConfig
from server.protocol import SYNC_STEP1, SYNC_STEP2, decode_message, encode_sync


@asynccontextmanager
async def serving(config: ServerConfig, websockets: str | None = None):
    """Yields (app, "ws://127.0.0.1:PORT/ws"). `websockets` names another of uvicorn's websocket
    implementations: the app then runs on plain ASGI receives instead of the room's link (ws_link)."""
    app = create_app(config)
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, lifespan="on",
                                           log_level="warning", **websocket_options(config, websockets)))
    task = asyncio.create_task(runner.serve())
    while not runner.started:
        await asyncio.sleep(0.01)
    try:
        yield app, f"ws://127.0.0.1:{config.port}/ws"
    finally:
        runner.should_exit = True
        await task


async def text_of(ws, timeout: float | None = None) -> str:
    """Sends an empty sync step 1 and returns the text of the server's step 2 (TimeoutError past `timeout`)."""
    await ws.send(encode_sync(SYNC_STEP1, b"\x00"))
    async with asyncio.timeout(timeout):
        while True:
            message = decode_message(await ws.recv())
            if getattr(message, "kind", None) == SYNC_STEP2:
                doc = Doc()
                doc.apply_update(message.payload)
                return str(doc.get("content", type=Text))
