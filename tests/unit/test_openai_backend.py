"""The OpenAI-compatible backend against the strict fake server: streaming, usage, typed errors."""

from __future__ import annotations

import pytest

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import ModelSpec
from inference.errors import (
    BadRequest,
    ContextTooLong,
    ModelNotServed,
    ModelTimeout,
    ModelUnavailable,
    RateLimited,
    StreamBroken,
)
from inference.protocol import ChatMessage, Finished, TextDelta
from tests.fakes.openai_api import FakeModelServer, count_tokens
from tests.harness_wait import eventually

PROMPT = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello world")]


def spec_for(server: FakeModelServer, **extra: object) -> ModelSpec:
    data = {
        "id": "alpha", "title": "Alpha", "base_url": server.base_url, "model": "alpha-served",
        "timeouts": {"connect": 1, "first_token": 2, "total": 5},
    }
    data.update(extra)
    return ModelSpec.model_validate(data)


async def collect(backend: OpenAICompatBackend, messages=PROMPT, params=None):
    texts, finished = [], None
    async for event in backend.stream(messages, params or {}):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            assert isinstance(event, Finished)
            finished = event
    return "".join(texts), finished


@pytest.fixture
async def server():
    async with FakeModelServer({"alpha-served": 200}, api_key="sk-secret") as fake:
        yield fake


@pytest.fixture
async def backend(server):
    instance = OpenAICompatBackend(spec_for(server), api_key="sk-secret")
    yield instance
    await instance.aclose()


async def test_streams_text_and_reports_usage_from_the_usage_chunk(server, backend):
    server.tokens_per_chunk = 3  # several tokens per chunk, as with speculative decoding
    text, finished = await collect(backend, params={"temperature": 0.3, "max_tokens": 50})
    assert text == "[alpha-served] hello world"
    assert finished.finish_reason == "stop"
    assert finished.usage.completion_tokens == count_tokens(text)
    assert finished.usage.prompt_tokens and finished.usage.prompt_tokens > 0
    body = server.chat_requests()[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert server.requests[-1].headers["authorization"] == "Bearer sk-secret"


async def test_length_finish_reason_is_passed_through(server, backend):
    server.set_reply("alpha-served", "one two three four five six")
    text, finished = await collect(backend, params={"max_tokens": 2})
    assert text == "one two" and finished.finish_reason == "length"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (500, None, ModelUnavailable),
        (503, None, ModelUnavailable),
        (429, None, RateLimited),
        (400, None, BadRequest),
        (408, None, ModelTimeout),
    ],
)
async def test_http_errors_are_typed(server, backend, status, code, expected):
    server.fail_next(status, code=code)
    with pytest.raises(expected):
        await collect(backend)


async def test_rate_limit_carries_retry_after(server, backend):
    server.fail_next(429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        await collect(backend)
    assert caught.value.retry_after == 7


async def test_context_too_long_is_its_own_error(server, backend):
    long = [ChatMessage("user", "word " * 300)]
    with pytest.raises(ContextTooLong):
        await collect(backend, long)


async def test_wrong_key_is_a_bad_request_not_an_outage(server):
    backend = OpenAICompatBackend(spec_for(server), api_key="wrong")
    try:
        with pytest.raises(BadRequest):
            await collect(backend)
    finally:
        await backend.aclose()


@pytest.mark.parametrize("flavour", ["vllm", "openai"])
async def test_an_unknown_served_model_is_not_served_rather_than_a_bad_request(flavour):
    """The server does not have the model: another replica or a fallback may (not the user's
    question's fault)."""
    async with FakeModelServer({"alpha-served": 200}, flavour=flavour) as server:
        backend = OpenAICompatBackend(spec_for(server, model="nope"), api_key=None)
        try:
            with pytest.raises(ModelNotServed) as caught:
                await collect(backend)
        finally:
            await backend.aclose()
    assert "The model `nope` does not exist." in caught.value.detail


@pytest.mark.parametrize("mode", ["error_event", "object_error", "disconnect"])
async def test_errors_inside_a_200_stream_are_errors_not_text(server, backend, mode):
    server.set_reply("alpha-served", "a b c d e f g h i j")
    server.fail_mid_stream_next(after_chunks=2, mode=mode, message="engine died")
    received = []
    with pytest.raises(StreamBroken):
        async for event in backend.stream(PROMPT, {}):
            if isinstance(event, TextDelta):
                received.append(event.text)
    text = "".join(received)
    assert text and "engine died" not in text and "error" not in text


async def test_connection_refused_is_unavailable():
    spec = ModelSpec.model_validate(
        {"id": "x", "title": "X", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    )
    backend = OpenAICompatBackend(spec, None)
    try:
        with pytest.raises(ModelUnavailable):
            await collect(backend)
    finally:
        await backend.aclose()


async def test_first_token_timeout(server):
    server.hang_next(5)
    backend = OpenAICompatBackend(
        spec_for(server, timeouts={"connect": 1, "first_token": 0.3, "total": 5}), "sk-secret"
    )
    try:
        with pytest.raises(ModelTimeout):
            await collect(backend)
    finally:
        await backend.aclose()


async def test_slow_first_token_after_headers_times_out(server):
    server.first_token_delay = 2
    backend = OpenAICompatBackend(
        spec_for(server, timeouts={"connect": 1, "first_token": 0.3, "total": 5}), "sk-secret"
    )
    try:
        with pytest.raises(ModelTimeout):
            await collect(backend)
    finally:
        await backend.aclose()


async def test_total_timeout_bounds_a_slow_answer(server):
    server.set_reply("alpha-served", "a b c d e f g h i j k l")
    server.tokens_per_chunk = 1
    server.chunk_delay = 0.2
    backend = OpenAICompatBackend(
        spec_for(server, timeouts={"connect": 1, "first_token": 1, "total": 0.7}), "sk-secret"
    )
    try:
        with pytest.raises(ModelTimeout):
            await collect(backend)
    finally:
        await backend.aclose()


async def test_closing_the_stream_early_cancels_the_request(server, backend):
    server.set_reply("alpha-served", " ".join(["tok"] * 50))
    server.tokens_per_chunk = 1
    server.chunk_delay = 0.05
    stream = backend.stream(PROMPT, {})
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    await eventually(lambda: server.cancelled_requests >= 1)
