"""Tests for the fake OpenAI-compatible server, driven by the real ``openai.AsyncOpenAI`` client.

The ``fake`` fixture runs every test in both flavours (vLLM's, the default, and the generic
OpenAI-like one); where they differ, a test says which it checks. How the vLLM flavour matches
the recordings of real vLLM is tested in test_fake_vllm_recordings.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from inference.vllm_metrics import parse_metrics
from tests.fakes.openai_api import FakeModelServer, count_tokens, split_tokens

KEY = "sk-test"
MODEL = "fake-model"
USER_TEXT = "one two three four five six seven"
MSGS: list[Any] = [{"role": "user", "content": USER_TEXT}]
DEFAULT_REPLY = f"[{MODEL}] {USER_TEXT}"
PROMPT_TOKENS = count_tokens(USER_TEXT) + 4

pytestmark = pytest.mark.timeout(10)


@pytest.fixture(params=["vllm", "openai"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeModelServer]:
    server = FakeModelServer({MODEL: 4096, "tiny": 32}, api_key=KEY, flavour=request.param)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=5.0)
    yield c
    await c.close()


async def collect(stream: Any) -> tuple[str, list[Any]]:
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_tokenizer_round_trips() -> None:
    for text in ["", "a", "  hello   world \n", "x\n\ny ", "   "]:
        assert "".join(split_tokens(text)) == text
    assert split_tokens(" hi there ") == [" hi", " there", " "]
    assert count_tokens("one two  three") == 3


async def test_stream_reassembles_with_usage(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.tokens_per_chunk = 3
    stream = await client.chat.completions.create(
        model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    text, chunks = await collect(stream)
    assert text == DEFAULT_REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    n_tokens = count_tokens(DEFAULT_REPLY)
    assert len(content) == -(-n_tokens // 3) < n_tokens
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == n_tokens
    assert last.usage.total_tokens == PROMPT_TOKENS + n_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


async def test_no_usage_without_include_usage(client: openai.AsyncOpenAI):
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    text, chunks = await collect(stream)
    assert text == DEFAULT_REPLY
    assert all(c.usage is None and c.choices for c in chunks)


async def test_raw_sse_wire_format(fake: FakeModelServer):
    body = {"model": MODEL, "messages": MSGS, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{fake.base_url}/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = (await r.read()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])


async def test_non_stream_completion(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.set_reply(MODEL, lambda body: f"echo {len(body['messages'])}")
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS, temperature=0.5)
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "echo 1"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 2
    assert resp.usage.prompt_tokens == PROMPT_TOKENS
    (req,) = fake.chat_requests()
    assert req["temperature"] == 0.5 and req["messages"] == MSGS
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_list_content_parts_and_models(fake: FakeModelServer, client: openai.AsyncOpenAI):
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "here"},
    ]
    resp = await client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": parts}]
    )
    assert resp.choices[0].message.content == "[tiny] look\nhere"
    models = await client.models.list()
    by_id = {m.id: m for m in models.data}
    assert set(by_id) == {MODEL, "tiny"}
    extra = by_id["tiny"].model_extra
    assert extra is not None and extra["max_model_len"] == 32
    if fake.flavour == "vllm":
        assert by_id["tiny"].owned_by == "vllm"
        assert set(extra) == {"max_model_len", "root", "parent", "permission"}
    else:
        assert by_id["tiny"].owned_by == "fake" and extra == {"max_model_len": 32}


async def test_health_needs_no_key(fake: FakeModelServer):
    url = fake.base_url.removesuffix("/v1") + "/health"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200 and await r.read() == b""


async def test_unknown_model(fake: FakeModelServer, client: openai.AsyncOpenAI):
    with pytest.raises(openai.NotFoundError) as exc:
        await client.chat.completions.create(model="nope", messages=MSGS)
    assert exc.value.type == "NotFoundError"
    if fake.flavour == "vllm":
        assert exc.value.body == {
            "message": f"The model `nope` does not exist. Valid aliases: {MODEL}, tiny.",
            "type": "NotFoundError", "param": "model", "code": 404}
    else:
        assert exc.value.message.endswith("The model `nope` does not exist.")


@pytest.mark.parametrize("fake", ["vllm"], indirect=True)
async def test_vllm_takes_its_model_when_none_is_named(fake: FakeModelServer):
    body = {"messages": MSGS, "max_tokens": 2}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (aiohttp.ClientSession(headers=headers) as s,
                s.post(f"{fake.base_url}/chat/completions", json=body) as r):
        assert r.status == 200
        assert (await r.json())["model"] == MODEL


async def test_wrong_or_missing_key(fake: FakeModelServer):
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="bad", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as exc:
            await c.chat.completions.create(model=MODEL, messages=MSGS)
        if fake.flavour == "vllm":  # vLLM's --api-key middleware
            assert exc.value.body == "Unauthorized" and exc.value.code is None
        else:
            assert exc.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await c.models.list()
    async with aiohttp.ClientSession() as s, s.get(f"{fake.base_url}/models") as r:
        assert r.status == 401
    assert len(fake.requests) == 3  # recorded even though rejected


async def test_fail_next_500_then_recovers(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.fail_next(500, message="boom", times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as exc:
            await client.chat.completions.create(model=MODEL, messages=MSGS)
        assert exc.value.status_code == 500 and "boom" in exc.value.message
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS)
    assert resp.choices[0].message.content == DEFAULT_REPLY


async def test_fail_next_429_retry_after(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.fail_next(429, message="slow down", headers={"Retry-After": "2"}, code="rate_limit")
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    assert exc.value.response.headers["retry-after"] == "2"
    assert exc.value.code == "rate_limit" and exc.value.type == "RateLimitError"


async def test_fail_next_503(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.fail_next(503)
    with pytest.raises(openai.InternalServerError) as exc:
        await client.chat.completions.create(model=MODEL, messages=MSGS)
    assert exc.value.status_code == 503 and exc.value.type == "ServiceUnavailableError"


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
async def test_openai_context_length_exceeded(client: openai.AsyncOpenAI):
    long = " ".join(["word"] * 30)  # 30 + 4 tokens > 32
    with pytest.raises(openai.BadRequestError) as exc:
        await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": long}]
        )
    assert exc.value.code == "context_length_exceeded"
    assert "maximum context length is 32 tokens" in exc.value.message
    assert "(34 in the messages, 0 in the completion)" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:  # prompt fits, prompt + max_tokens not
        await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=30
        )
    assert "you requested 35 tokens (5 in the messages, 30 in the completion)" in str(exc.value)


@pytest.mark.parametrize("fake", ["vllm"], indirect=True)
async def test_vllm_context_length(client: openai.AsyncOpenAI):
    """vLLM refuses a prompt over the context, caps max_tokens to the room the prompt leaves,
    and refuses max_tokens over the context itself."""
    long = " ".join(["word"] * 30)  # 30 + 4 tokens > 32
    with pytest.raises(openai.BadRequestError) as exc:
        await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": long}], stream=True)
    assert exc.value.body == {
        "message": "This model's maximum context length is 32 tokens. However, your prompt "
        "contains at least 33 input tokens, which exceeds this limit even without any output "
        "tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
        "value=33)", "type": "BadRequestError", "param": "input_tokens", "code": 400}
    words = " ".join(["word"] * 20)  # 24 prompt tokens: 8 left
    resp = await client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": words}], max_tokens=30)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 8
    assert resp.usage.total_tokens == 32
    with pytest.raises(openai.BadRequestError) as exc:
        await client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=33)
    assert exc.value.message.endswith("max_tokens=33 cannot be greater than max_model_len=32. "
                                      "Please request fewer output tokens. (parameter="
                                      "max_tokens, value=33)")


async def test_max_tokens_truncates(fake: FakeModelServer, client: openai.AsyncOpenAI):
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3)
    assert resp.choices[0].message.content == "[fake-model] one two"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    stream = await client.chat.completions.create(
        model=MODEL, messages=MSGS, max_completion_tokens=2, stream=True
    )
    text, chunks = await collect(stream)
    assert text == "[fake-model] one"
    assert chunks[-1].choices[0].finish_reason == "length"


INVALID = [
    ({"temperature": 2.5}, "BadRequestError", "temperature"),
    ({"temperature": -0.1}, "BadRequestError", "temperature"),
    ({"top_p": 0}, "BadRequestError", "top_p"),
    ({"max_tokens": 0}, "BadRequestError", "max_tokens"),
    ({"max_completion_tokens": -3}, "BadRequestError", "max_tokens"),
    ({"messages": []}, "BadRequestError", None),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, None, None),  # vLLM takes it
    ({"messages": [{"role": "user", "content": 42}]}, "Bad Request",
     "body.messages.0.ChatCompletionDeveloperMessageParam.content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
     "Bad Request", "body.messages.0.ChatCompletionDeveloperMessageParam.content"),
    ({"stream_options": {"include_usage": True}}, "BadRequestError", "stream_options"),
]


@pytest.mark.parametrize(
    ("fake", "kwargs", "vllm_type", "vllm_param"),
    [("vllm", *case) for case in INVALID]
    # The OpenAI-like flavour does not check top_p.
    + [("openai", *case) for case in INVALID if "top_p" not in case[0]],
    indirect=["fake"],
)
async def test_invalid_requests(fake: FakeModelServer, client: openai.AsyncOpenAI,
                                kwargs: dict[str, Any], vllm_type: str | None,
                                vllm_param: str | None):
    args: dict[str, Any] = {"model": MODEL, "messages": MSGS, **kwargs}
    if fake.flavour == "vllm" and vllm_type is None:
        await client.chat.completions.create(**args)
        return
    with pytest.raises(openai.BadRequestError) as exc:
        await client.chat.completions.create(**args)
    body = exc.value.body
    assert isinstance(body, dict)
    if fake.flavour == "vllm":
        assert (body["type"], body["param"], body["code"]) == (vllm_type, vllm_param, 400)
    else:
        assert exc.value.type == "BadRequestError"


async def test_invalid_raw_bodies(fake: FakeModelServer):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = f"{fake.base_url}/chat/completions"
    async with aiohttp.ClientSession(headers=headers) as s:
        for data, param in [(b"{not json", "body.1"), (b"[]", "body"),
                            (b'{"messages": "x", "model": 1}', "body.messages")]:
            async with s.post(url, data=data) as r:
                assert r.status == 400
                err = (await r.json())["error"]
                if fake.flavour == "vllm":  # pydantic's errors, as vLLM reports them
                    assert err["type"] == "Bad Request" and err["param"] == param
                    assert err["message"].startswith(("1 validation error:\n  {'type': ",
                                                      "2 validation errors:\n  {'type': "))
                else:
                    assert err["type"] == "BadRequestError" and err["param"] is None
    assert fake.requests[0].json is None and len(fake.requests) == 3


async def test_mid_stream_error_event(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.fail_mid_stream_next(after_chunks=2, message="engine died")
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "[fake-model] one two three"
    assert exc.value.message == "engine died" and exc.value.code == "500"
    assert not isinstance(exc.value, openai.APIStatusError)
    assert fake.cancelled_requests == 0


async def test_mid_stream_object_error_is_yielded(
    fake: FakeModelServer, client: openai.AsyncOpenAI
):
    fake.fail_mid_stream_next(after_chunks=1, mode="object_error", message="old vllm")
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    chunks = [c async for c in stream]  # the client does NOT raise for this shape
    last = chunks[-1]
    assert last.object == "error" and last.choices is None
    assert last.model_extra is not None and last.model_extra["message"] == "old vllm"
    assert all(c.object == "chat.completion.chunk" for c in chunks[:-1])


async def test_mid_stream_disconnect(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.fail_mid_stream_next(after_chunks=1, mode="disconnect")
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "[fake-model] one"
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS)  # server still fine
    assert resp.choices[0].message.content == DEFAULT_REPLY
    assert fake.cancelled_requests == 0  # the server dropped it, the client did not cancel


async def test_non_stream_does_not_consume_mid_stream_failure(
    fake: FakeModelServer, client: openai.AsyncOpenAI
):
    fake.fail_mid_stream_next(mode="error_event")
    await client.chat.completions.create(model=MODEL, messages=MSGS)
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    with pytest.raises(openai.APIError):
        await collect(stream)


async def test_hang_next_times_out(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.hang_next(5.0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model=MODEL, messages=MSGS, timeout=0.3)
    assert time.monotonic() - start < 2.0
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS)
    assert resp.choices[0].message.content == DEFAULT_REPLY


async def test_delays_are_real(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.tokens_per_chunk, fake.first_token_delay, fake.chunk_delay = 1, 0.2, 0.05
    start = time.monotonic()
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
    assert arrivals[0] >= 0.18
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 1) * 0.8


async def test_client_closing_stream_is_counted(fake: FakeModelServer, client: openai.AsyncOpenAI):
    fake.tokens_per_chunk, fake.chunk_delay = 1, 0.05
    fake.set_reply(MODEL, " ".join(["tok"] * 200))
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    await stream.close()
    for _ in range(100):
        if fake.cancelled_requests:
            break
        await asyncio.sleep(0.02)
    assert fake.cancelled_requests == 1
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=2)
    assert resp.choices[0].message.content == "tok tok"
    assert fake.cancelled_requests == 1


async def test_stop_with_hung_request_is_quick():
    server = FakeModelServer(["m"])
    await server.start()
    server.hang_next(30)
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        task = asyncio.create_task(c.chat.completions.create(model="m", messages=MSGS))
        for _ in range(200):
            if server.requests:
                break
            await asyncio.sleep(0.01)
        start = time.monotonic()
        await server.stop()
        assert time.monotonic() - start < 2.0
        with pytest.raises(openai.APIConnectionError):
            await task
    assert server.cancelled_requests == 0


async def test_odd_answers_nul_lone_surrogate_split_pair_and_empty(
    fake: FakeModelServer, client: openai.AsyncOpenAI
):
    """What misbehaving servers send: control characters and surrogate halves arrive as the
    client decodes them (JSON escapes), a pair cut across two chunks as two lone halves."""
    fake.set_reply(MODEL, "nul\x00 and bell\x07")
    text, _ = await collect(await client.chat.completions.create(
        model=MODEL, messages=MSGS, stream=True))
    assert text == "nul\x00 and bell\x07"

    fake.set_reply(MODEL, ["smile ", "\ud83d", "\ude00", " lone \udc00"])
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True)
    text, chunks = await collect(stream)
    pieces = [c.choices[0].delta.content for c in chunks
              if c.choices and c.choices[0].delta.content]
    assert pieces == ["smile ", "\ud83d", "\ude00", " lone \udc00"]
    assert text == "smile \ud83d\ude00 lone \udc00"  # still halves: the client does not pair them

    for empty in ("", "  \n "):
        fake.set_reply(MODEL, empty)
        stream = await client.chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True})
        text, chunks = await collect(stream)
        assert text == empty
        finals = [c.choices[0].finish_reason for c in chunks if c.choices
                  and c.choices[0].finish_reason]
        assert finals == ["stop"]


async def test_vllm_tokenize_counts_as_the_chat_does_and_draft_counters_move():
    async with FakeModelServer({"m": 4096}, num_speculative_tokens=3, tokens_per_chunk=3) as fake:
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "one two three four five"}]
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{fake.root}/tokenize",
                              json={"model": "m", "messages": messages}) as r:
                counted = await r.json()
            async with s.post(f"{fake.root}/tokenize",
                              json={"prompt": "hello there", "add_special_tokens": False}) as r:
                assert (await r.json())["count"] == 2
            async with s.get(f"{fake.root}/version") as r:
                assert await r.json() == {"version": "0.32.0"}
            async with s.post(f"{fake.base_url}/chat/completions",
                              json={"model": "m", "messages": messages}) as r:
                answer = await r.json()
            async with s.get(f"{fake.root}/metrics") as r:
                metrics = await r.text()
    assert counted["count"] == answer["usage"]["prompt_tokens"] == 2 + 5 + 2 * 4
    assert len(counted["tokens"]) == counted["count"] and counted["max_model_len"] == 4096
    # "[m] one two three four five": 6 tokens in chunks of 3, i.e. 2 steps accepting 2 each.
    assert answer["usage"]["completion_tokens"] == 6
    stats = parse_metrics(metrics)
    assert (stats.spec_drafts, stats.spec_draft_tokens, stats.spec_accepted_tokens) == (2, 6, 4)
