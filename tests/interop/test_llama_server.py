"""The official openai client against llama.cpp's server with the tiny model: proves the fixture that the
`--engine openai` tests run against (tests/support/llama_server.py)."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "system", "content": "You redraft text."}, {"role": "user", "content": "Redraft: the cat sat."}]


@pytest.fixture
def client(llama_server):
    with openai.OpenAI(base_url=llama_server.base_url, api_key="unused", max_retries=0, timeout=30) as client:
        yield client


def is_printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def test_models_lists_the_tiny_model(client, llama_server):
    assert [model.id for model in client.models.list()] == [llama_server.model] == ["tiny-llama"]


def test_chat_completion_streams_the_same_text_as_the_whole_answer(client, llama_server):
    # Greedy decoding: the same request gives the same text, streamed or not.
    request = {"model": llama_server.model, "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**request)
    text = whole.choices[0].message.content
    assert whole.choices[0].finish_reason == "length"  # the model never ends on its own (tiny_gguf.py)
    assert whole.usage.completion_tokens == 12
    assert text and is_printable_ascii(text), repr(text)

    chunks = list(client.chat.completions.create(**request, stream=True))
    deltas = [chunk.choices[0].delta.content or "" for chunk in chunks]
    assert "".join(deltas) == text
    assert len([delta for delta in deltas if delta]) > 1  # streamed in pieces, not in one block
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "length"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


def test_a_stop_string_ends_the_stream_before_it(client, llama_server):
    request = {"model": llama_server.model, "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    text = client.chat.completions.create(**request).choices[0].message.content
    stop = text[len(text) // 2 :][:2]
    stream = client.chat.completions.create(**request, stop=[stop], stream=True)
    chunks = list(stream)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == text[: text.index(stop)]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_wrong_api_key_is_refused(start_llama_server):
    server = start_llama_server(api_key="right-key")
    with openai.OpenAI(base_url=server.base_url, api_key="wrong-key", max_retries=0, timeout=30) as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    with openai.OpenAI(base_url=server.base_url, api_key="right-key", max_retries=0, timeout=30) as client:
        assert [model.id for model in client.models.list()] == [server.model]


def test_two_concurrent_streams_both_finish(client, llama_server):
    # llama-cpp-python's default (--interrupt_requests true) would end the first stream early, with [DONE] and
    # no finish_reason, when the second request arrives; the fixture makes the server queue it instead.
    request = {"model": llama_server.model, "messages": MESSAGES, "max_tokens": 200, "temperature": 0}
    with client.chat.completions.create(**request, stream=True) as first:
        first_chunks = [next(first)]  # the first request is running
        second = client.chat.completions.create(**request)
        first_chunks += list(first)
    assert second.choices[0].finish_reason == first_chunks[-1].choices[0].finish_reason == "length"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in first_chunks) == second.choices[0].message.content
