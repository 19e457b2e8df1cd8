"""Reasoning from the OpenAI-compatible backend: both delta fields, and `<think>` in content,
read from the strict fake server in each flavour."""

from __future__ import annotations

import pytest

from inference.backends.openai_compat import OpenAICompatBackend
from inference.protocol import Finished, ReasoningDelta, TextDelta
from tests.fakes.openai_api import FakeModelServer, Thinking, count_tokens
from tests.unit.test_openai_backend import PROMPT, spec_for


async def split(backend: OpenAICompatBackend, params=None, messages=PROMPT):
    """(reasoning, answer, Finished) of one streamed reply; reasoning never follows answer."""
    reasoning, text, finished = [], [], None
    async for event in backend.stream(messages, params or {}):
        if isinstance(event, ReasoningDelta):
            assert not text, "reasoning after the answer started"
            reasoning.append(event.text)
        elif isinstance(event, TextDelta):
            text.append(event.text)
        else:
            assert isinstance(event, Finished)
            finished = event
    return "".join(reasoning), "".join(text), finished


@pytest.mark.parametrize("flavour", ["vllm", "openai"])
@pytest.mark.parametrize("shape", ["reasoning", "reasoning_content", "think"])
async def test_reasoning_is_apart_from_the_answer(flavour, shape):
    async with FakeModelServer({"m": 500}, flavour=flavour) as server:
        server.tokens_per_chunk = 3  # "<think>" and "</think>" split across chunks
        server.set_reply("m", Thinking("Two plus two is four, I think.", "It is **4**.", shape))
        backend = OpenAICompatBackend(spec_for(server, model="m"), api_key=None)
        try:
            reasoning, text, finished = await split(backend)
        finally:
            await backend.aclose()
    assert reasoning.strip() == "Two plus two is four, I think."
    assert text == "It is **4**."
    assert finished.finish_reason == "stop"


async def test_the_raw_chunks_have_the_servers_shapes():
    """What the fake sends is what vLLM / DeepSeek send: checked on the wire."""
    async with FakeModelServer({"m": 500}, flavour="openai") as server:
        server.set_reply("m", Thinking("hmm", "ok", "reasoning_content"))
        import aiohttp
        async with aiohttp.ClientSession() as session, session.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "q"}],
                  "stream": True},
        ) as response:
            body = await response.text()
    assert '"delta": {"content": null, "reasoning_content": "hmm"}' in body
    assert '"delta": {"content": "ok"}' in body


async def test_a_model_out_of_tokens_while_thinking_has_reasoning_and_no_answer():
    async with FakeModelServer({"m": 500}) as server:
        server.set_reply("m", Thinking("one two three four five six", "never said", "think"))
        backend = OpenAICompatBackend(spec_for(server, model="m"), api_key=None)
        try:
            reasoning, text, finished = await split(backend, {"max_tokens": 4})
        finally:
            await backend.aclose()
    # "<think>\none two three" : the think never closed, so all of it is reasoning.
    assert reasoning.strip() == "one two three"
    assert text == ""
    assert finished.finish_reason == "length"


async def test_reasoning_tokens_count_against_max_tokens():
    async with FakeModelServer({"m": 500}) as server:
        server.set_reply("m", Thinking("a b c", "d e f"))
        backend = OpenAICompatBackend(spec_for(server, model="m"), api_key=None)
        try:
            reasoning, text, finished = await split(backend, {"max_tokens": 4})
        finally:
            await backend.aclose()
    assert (reasoning, text) == ("a b c", "d")
    assert finished.finish_reason == "length"
    assert finished.usage.completion_tokens == count_tokens("a b c d")
