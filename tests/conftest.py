"""Fixtures shared by every suite: real redis-server and server processes, Node Yjs peers."""

from __future__ import annotations

import os

import pytest

# Triton's interpreter runs the kernel tests on a machine without an NVIDIA GPU. triton.jit fixes the mode
# when it wraps a function, and transformers imports triton while probing for it: choose here, first.
if "TRITON_INTERPRET" not in os.environ and not os.path.exists("/dev/nvidia0"):
    os.environ["TRITON_INTERPRET"] = "1"

from tests.support.node import NodePeer
from tests.support.processes import RedisServer, ServerProcess


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def start_server(tmp_path):
    """Starts `redraft serve` processes; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(name: str = "server", **kwargs) -> ServerProcess:
        server = ServerProcess(tmp_path / name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def node_peers():
    """Creates Node Yjs peers; all are closed at the end of the test."""
    peers: list[NodePeer] = []

    def make(ws_url: str, doc: str, **kwargs) -> NodePeer:
        peer = NodePeer(ws_url, doc, **kwargs)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture
def py_clients():
    """Creates pycrdt y-websocket clients (tests/support/pyclient.py); all are closed at the end."""
    from tests.support.pyclient import PyClient

    clients: list[PyClient] = []

    def make(ws_url: str, doc: str, **kwargs) -> PyClient:
        client = PyClient(ws_url, doc, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
