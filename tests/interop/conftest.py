"""Fixtures of the interop suite: llama.cpp's OpenAI-compatible server, an implementation users run."""

from __future__ import annotations

import pytest

from tests.support.llama_server import LlamaServer, missing_reason


def require_llama() -> None:
    """Skips, with the reason, only where .venv-llama is missing outside `./dev test` (which builds it)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """One llama.cpp server for the session, with the tiny model: `.base_url` (ends in /v1), `.model`."""
    require_llama()
    server = LlamaServer(tmp_path_factory.mktemp("llama")).start()
    yield server
    server.stop()


@pytest.fixture
def start_llama_server(tmp_path):
    """Starts llama.cpp servers of one's own (`seed`, `api_key`); all are stopped at the end of the test."""
    require_llama()
    started: list[LlamaServer] = []

    def start(name: str = "llama", **kwargs) -> LlamaServer:
        server = LlamaServer(tmp_path / name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
