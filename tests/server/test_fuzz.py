"""Seeded random edits from Node Yjs clients and a pycrdt client, with random disconnects, converge.

Every op names its position as a fraction of the text, and the client resolves it
against its own text at the instant it applies the op, in code points: an index
can never land between the two halves of a surrogate pair (the server would
refuse such an update with 4422, so no client may see a 4xxx close). The run ends
with everyone online and in agreement, and the document the server stored, read
back from SQLite after a clean stop, is that same text. Set REDRAFT_TEST_SEED to
replay a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
from pycrdt import Doc, Text

from server.stores.sqlite import SqliteStore

DOC = "fuzz"
NUM_STEPS = 600
# ASCII, non-BMP (emoji, math, CJK extension B, a ZWJ sequence's parts), BMP CJK, combining marks.
ALPHABET = list("abcxyz ,.") + ["😀", "𝒳", "𠀋", "👩", "\u200d", "💻", "🎉"] + list("中文字") + ["\u0301", "\u0303"]


def random_op(rng: random.Random) -> dict:
    if rng.random() < 0.65:
        return {"op": "insert", "at": rng.random(), "text": "".join(rng.choices(ALPHABET, k=rng.randint(1, 6)))}
    return {"op": "delete", "at": rng.random(), "count": rng.randint(1, 5)}


def stored_text(db_path) -> str:
    """The document as the SQLite store holds it (snapshot and log), replayed into a fresh Doc."""

    async def load():
        store = SqliteStore(db_path)
        await store.start()
        try:
            return await store.load(DOC)
        finally:
            await store.close()

    replica = Doc()
    text = replica.get("content", type=Text)
    for update in asyncio.run(load()).updates:
        replica.apply_update(update)
    return str(text)


class Client:
    """A Node peer or a pycrdt client behind one interface, with its online state."""

    def __init__(self, name: str, peer, is_node: bool):
        self.name, self.peer, self.is_node = name, peer, is_node
        self.is_online = True

    def apply(self, ops: list[dict]) -> None:
        if self.is_node:
            self.peer.call("apply_ops", ops=ops)
        else:
            self.peer.apply_ops(ops)

    def go_offline(self) -> None:
        self.peer.disconnect()
        self.is_online = False

    def go_online(self) -> None:
        self.peer.reconnect() if self.is_node else self.peer.connect()
        self.is_online = True

    def refusals(self) -> list:
        """4xxx closes (the server refused something) and frames the client could not apply."""
        if self.is_node:
            codes, errors = [e["code"] for e in self.peer.events() if e["type"] == "close"], []
        else:
            codes, errors = self.peer.close_codes, [repr(e) for e in self.peer.errors]
        return [c for c in codes if c is not None and 4000 <= c < 5000] + errors


@pytest.mark.parametrize("run", range(2))
def test_random_edits_and_reconnects_converge_and_are_stored(run, start_server, node_peers, py_clients):
    seed = int(os.environ.get("REDRAFT_TEST_SEED", random.randrange(1 << 30))) + run
    print(f"seed={seed} (rerun with REDRAFT_TEST_SEED={seed - run})")
    rng = random.Random(seed)
    server = start_server(extra_args=("--compact-min-bytes", "1500"))
    clients = [
        Client("node-1", node_peers(server.ws_url, DOC), is_node=True),
        Client("node-2", node_peers(server.ws_url, DOC), is_node=True),
        Client("py", py_clients(server.ws_url, DOC), is_node=False),
    ]
    for client in clients:
        client.peer.wait_synced()

    for _ in range(NUM_STEPS):
        client = rng.choice(clients)
        roll = rng.random()
        if client.is_online and roll < 0.06:
            client.go_offline()
        elif not client.is_online and roll < 0.25:
            client.go_online()
        else:
            client.apply([random_op(rng) for _ in range(rng.randint(1, 4))])
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, 0.02))  # let the network catch up now and then
    for client in clients:
        if not client.is_online:
            client.go_online()

    final = _wait_for_agreement(clients, seed)
    assert {client.name: client.refusals() for client in clients} == {c.name: [] for c in clients}, seed
    assert "\ufffd" not in final, seed  # Yjs' mark of a split surrogate pair
    final.encode("utf-8")  # and no lone surrogate either: this would raise

    server.stop()  # SIGTERM: flushes and compacts
    assert stored_text(server.data_dir / "redraft.sqlite3") == final, seed


def _wait_for_agreement(clients: list[Client], seed: int, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        texts = {client.name: client.peer.text for client in clients}
        if len(set(texts.values())) == 1:
            return texts[clients[0].name]
        if time.monotonic() > deadline:
            lengths = {name: len(text) for name, text in texts.items()}
            refusals = {client.name: client.refusals() for client in clients}
            raise AssertionError(f"seed={seed}: clients never agreed: lengths {lengths}, refusals {refusals}")
        time.sleep(0.02)
