"""`--engine openai` against real OpenAI-compatible servers, and Redraft's own /v1 in front of them.

- Redraft's backend against Redraft's endpoint: server B redrafts through server A's /v1 (A runs the shipped
  model in-process, with a secret: B holds an engine token as its API key).
- Redraft's backend against llama.cpp's server (llama-cpp-python, tiny random model): a redraft streams,
  merges and undoes; a cancel mid-stream closes the stream and leaves the document as it was.
- Redraft's /v1 as a proxy for llama.cpp, with the official openai client: the same seeded request gives
  the same text through Redraft as from llama.cpp directly, streamed or not.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from server.auth import mint_engine_token
from tests.server.test_openai_engine import ORIGINAL, PASSAGE, api, document, engine_status, start_redraft, wait_status
from tests.support.processes import wait_until

SECRET = "interop-secret-0123456789"
QUESTION = [{"role": "user", "content": "Say something."}]


def ready(server, timeout: float = 120) -> dict:
    wait_until(lambda: engine_status(server)["status"] == "ready", timeout, "the engine to be ready")
    return engine_status(server)


def test_a_redraft_through_another_redraft_servers_api(start_server, py_clients):
    upstream = start_server("upstream", extra_args=("--engine", "local", "--secret", SECRET))
    upstream_status = ready(upstream)
    key = mint_engine_token(SECRET, ttl_s=3600)
    server = start_server("front", extra_args=("--engine", "openai", "--engine-url", upstream.http_url + "/v1"),
                          env={"REDRAFT_ENGINE_API_KEY": key})
    status = ready(server)
    # the model and its context come from upstream's /v1/models
    assert (status["model"], status["context"]) == ("redraft-small", upstream_status["context"])
    client = document(py_clients, server, "relay")
    redraft_id = start_redraft(server, client, "relay")
    final = wait_status(server, "relay", redraft_id, ("done", "failed"), timeout=120)
    assert final["status"] == "done", final
    assert final["progress"]["streaming"] is True and final["text"].strip()
    merged = ORIGINAL.replace(PASSAGE, final["text"])
    wait_until(lambda: client.text == merged, 10, "the merged text at the client")
    assert httpx.post(api(server, "relay", f"/{redraft_id}/undo")).json()["status"] == "undone"
    wait_until(lambda: client.text == ORIGINAL, 10, "the original text back")
    # upstream served it as an API request, and nothing is left in flight there
    assert httpx.get(upstream.http_url + "/healthz").json()["openai_api"]["in_flight"] == 0


def test_a_redraft_from_llama_cpp_streams_merges_and_undoes(start_server, py_clients, llama_server):
    server = start_server(extra_args=("--engine", "openai", "--engine-url", llama_server.base_url,
                                      "--engine-context", "4096"))
    status = ready(server, 30)
    assert (status["model"], status["context"]) == (llama_server.model, 4096)
    client = document(py_clients, server, "laptop")
    redraft_id = start_redraft(server, client, "laptop")
    final = wait_status(server, "laptop", redraft_id, ("done", "failed"), timeout=60)
    assert final["status"] == "done", final
    # the tiny model never ends by itself: the budget (one 256-token block) does, counted by llama.cpp
    assert final["progress"]["streaming"] is True and final["progress"]["step"] == 256
    assert final["text"] and final["text"].isprintable()
    wait_until(lambda: PASSAGE not in client.text and client.text.startswith("Intro line."), 10, "the merge")
    assert httpx.post(api(server, "laptop", f"/{redraft_id}/undo")).json()["status"] == "undone"
    wait_until(lambda: client.text == ORIGINAL, 10, "the original text back")


def test_cancelling_a_llama_cpp_redraft_closes_the_stream(start_server, py_clients, start_llama_server):
    llama = start_llama_server("slow")
    server = start_server(extra_args=("--engine", "openai", "--engine-url", llama.base_url, "--engine-context", "4096"))
    ready(server, 30)
    client = py_clients(server.ws_url, "cancel")
    client.wait_synced()
    long_passage = "A sentence that the tiny model will take its time over. " * 14
    client.insert(0, long_passage)
    witness = py_clients(server.ws_url, "cancel")  # syncs from the server: once it has the text, so has the server
    witness.wait_synced()
    wait_until(lambda: witness.text == long_passage, 10, "the server to hold the text")
    # a rewrite of ~800 bytes gets four 256-token blocks (1,024 tokens: some 4 s on llama.cpp's one thread)
    end = len(long_passage)
    response = httpx.post(api(server, "cancel"), json={"start_index": 0, "end_index": end})
    assert response.status_code == 202, response.text
    redraft_id = response.json()["id"]
    wait_status(server, "cancel", redraft_id, ("running",), timeout=30)
    assert httpx.delete(api(server, "cancel", f"/{redraft_id}")).status_code == 200
    final = wait_status(server, "cancel", redraft_id, ("cancelled", "failed", "done"), timeout=10)
    assert final["status"] == "cancelled" and final["progress"]["step"] < 1024, final
    assert client.text == long_passage
    # llama.cpp is free again at once (a stream left open would hold its only slot): a short request answers
    with openai.OpenAI(base_url=llama.base_url, api_key="none", timeout=10) as direct:
        answer = direct.chat.completions.create(model=llama.model, messages=QUESTION, max_tokens=4)
    assert answer.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_redrafts_api_in_front_of_llama_cpp_gives_llama_cpps_text(start_server, llama_server, stream):
    server = start_server(extra_args=("--engine", "openai", "--engine-url", llama_server.base_url))
    ready(server, 30)
    with openai.OpenAI(base_url=llama_server.base_url, api_key="none", timeout=30) as direct:
        expected = direct.chat.completions.create(model=llama_server.model, messages=QUESTION, max_tokens=24,
                                                  seed=5, stream=False).choices[0].message.content
    with openai.OpenAI(base_url=server.http_url + "/v1", api_key="none", timeout=30) as relayed:
        relay(relayed, llama_server, stream, expected)


def relay(relayed: openai.OpenAI, llama_server, stream: bool, expected: str) -> None:
    assert [model.id for model in relayed.models.list()] == [llama_server.model]
    request = dict(model=llama_server.model, messages=QUESTION, max_tokens=24, seed=5, stream=stream)
    if stream:
        chunks = list(relayed.chat.completions.create(**request))
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason == "length"
    else:
        answer = relayed.chat.completions.create(**request)
        text = answer.choices[0].message.content
        assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 24
    assert text == expected
