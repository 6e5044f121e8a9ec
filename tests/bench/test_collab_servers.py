"""Every server bench/collab.py compares starts, and its dialect carries the load generator's edits: three
clients send marked edits for a moment and each marker reaches every other client; then a late joiner's sync
step 2 (decoded with pycrdt) holds every marker sent. The Node servers need their npm dependencies
(`npm ci` in bench/collab_node/*, done by ensure_node_servers; it needs the registry the first time)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from pycrdt import Doc, Text

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from collab_load import EMPTY_STATE_STEP1, MARKER, TEXT_NAME, Session  # noqa: E402
from collab_servers import NODE_PROJECTS, SERVERS, canonical_name, ensure_node_servers, start_server  # noqa: E402
from ws_client import connect, new_client  # noqa: E402

from server.protocol import MESSAGE_SYNC, SYNC_STEP2, SyncMessage, decode_message  # noqa: E402

NUM_CLIENTS = 3


@pytest.fixture(scope="module")
def node_servers():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node and npm are not installed")
    ensure_node_servers()


@pytest.mark.parametrize("name", SERVERS)
def test_edits_reach_every_client_and_a_late_joiner(name, request):
    if name in NODE_PROJECTS:
        request.getfixturevalue("node_servers")
    asyncio.run(_exchange(name))


async def _exchange(name: str) -> None:
    async with start_server(name) as server:
        doc = f"servers-test-{name}"
        session = Session(server, doc, NUM_CLIENTS, num_recorders=NUM_CLIENTS)
        await session.connect()
        try:
            step = await session.run_step(rate=10.0, warmup_s=0.0, duration_s=0.5, drain_s=3.0)
            # while the others are still there: pycrdt-websocket drops a room its last client left
            text = await _late_joiners_text(server, doc)
        finally:
            await session.close()
        assert step.error == "" and step.disconnects == 0, step
        measured = sum(session.window.sent_by)  # the edits sent inside the step's window, timed on arrival
        assert measured >= NUM_CLIENTS * 4
        assert step.missing == 0 and step.num_samples == (NUM_CLIENTS - 1) * measured, step
        sent = {(c.index, k) for c in session.clients for k in range(c.seq)}
        assert {(int(i), int(k)) for i, k in MARKER.findall(text.encode())} == sent


async def _late_joiners_text(server, doc: str) -> str:
    """The document's text from the sync step 2 a fresh client gets for its empty state vector."""
    dialect = server.dialect
    step2: asyncio.Future[SyncMessage] = asyncio.get_running_loop().create_future()

    def on_frame(frame: bytes, now: float) -> None:
        message = dialect.unwrap(frame)
        if message and message[0] == MESSAGE_SYNC and message[1] == SYNC_STEP2 and not step2.done():
            step2.set_result(decode_message(message))

    client = new_client(server.ws_url(doc), on_frame)
    await connect(client)
    try:
        for frame in dialect.hello(doc):
            client.send(frame)
        client.send(dialect.wrap(doc, EMPTY_STATE_STEP1))
        update = (await asyncio.wait_for(step2, 10.0)).payload
    finally:
        await client.close()
    replica = Doc()
    replica.apply_update(update)
    return str(replica.get(TEXT_NAME.decode(), type=Text))


def test_baseline_is_pycrdt_and_unknown_names_are_refused():
    assert canonical_name("baseline") == "pycrdt"
    with pytest.raises(ValueError, match="unknown server"):
        canonical_name("y-sweet")
