"""One backend for every OpenAI-compatible server (OpenAI, OpenRouter, vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import openai

from inference.catalogue import ModelSpec
from inference.errors import (
    BackendError,
    BadRequest,
    ContextTooLong,
    ModelNotServed,
    ModelTimeout,
    ModelUnavailable,
    RateLimited,
    StreamBroken,
)
from inference.protocol import ChatMessage, Finished, ReasoningDelta, StreamEvent, Usage
from inference.thinking import ThinkSplitter
from inference.tokens import counter_for_model

_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context length")
# vLLM caps max_tokens to the room the prompt leaves, then refuses a cap of 0: the prompt filled
# the context (chatmux itself never asks for fewer than 1 token).
_NO_ROOM = re.compile(r"max_tokens must be at least 1, got 0\b")


def _names_the_model(exc: openai.APIStatusError) -> bool:
    """A 404 about the model: vLLM's (param "model"), OpenAI's (code "model_not_found")."""
    body = exc.body if isinstance(exc.body, dict) else {}
    if body.get("param") == "model" or body.get("code") == "model_not_found":
        return True
    text = exc.message.lower()
    return "model" in text and ("does not exist" in text or "not found" in text)


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _refused(exc: BaseException) -> bool:
    """Whether a "timeout" was a connection refused or dropped: the client's aiohttp transport
    reports every aiohttp connection error as a connect timeout."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return False
        if isinstance(cause, aiohttp.ClientConnectionError | OSError):
            return True
        cause = cause.__cause__
    return False


def connection_failed(exc: BaseException | None) -> bool:
    """Whether an `openai` exception is a refused or dropped connection (not a timeout)."""
    if not isinstance(exc, openai.APIConnectionError):
        return False
    return not isinstance(exc, openai.APITimeoutError) or _refused(exc)


def map_openai_error(exc: Exception, *, started: bool) -> BackendError:
    """Translate an `openai` exception into a typed backend error."""
    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        return ModelTimeout("request timed out")
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError that was a refusal, too
        return StreamBroken("connection lost") if started else ModelUnavailable("cannot connect")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"HTTP {status}: {exc.message}"[:300]
        if status == 429:
            return RateLimited(detail, retry_after=_retry_after(exc.response))
        if status == 408:
            return ModelTimeout(detail)
        if status >= 500:
            return ModelUnavailable(detail, retry_after=_retry_after(exc.response))
        if status == 404 and _names_the_model(exc):
            return ModelNotServed(detail)
        text = f"{exc.code or ''} {exc.message}".lower()
        if any(marker in text for marker in _CONTEXT_MARKERS) or _NO_ROOM.search(text):
            return ContextTooLong(detail)
        return BadRequest(detail)
    if isinstance(exc, openai.APIError):  # an error object inside a 200 stream
        return StreamBroken(str(exc.message)[:300])
    name = type(exc).__name__
    return StreamBroken(name) if started else ModelUnavailable(name)


class OpenAICompatBackend:
    """Streams chat completions with usage, connect/first-token/total timeouts and typed errors."""

    def __init__(self, spec: ModelSpec, api_key: str | None, base_url: str | None = None) -> None:
        self.spec = spec
        self.base_url = base_url or spec.base_url
        self.counter = counter_for_model(spec.model)  # tiktoken for OpenAI models
        timeouts = spec.timeouts
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            # Local servers (vLLM, llama.cpp, Ollama) accept any key; the client insists on one.
            api_key=api_key or "no-key",
            max_retries=0,
            timeout=openai.Timeout(timeouts.total, connect=timeouts.connect),
            # The SDK's aiohttp transport: the bot's busiest path is reading streamed chunks,
            # and it reads them at half the CPU of the default httpx transport. aiohttp refuses
            # credentials in the URL next to the Authorization header: such a URL keeps httpx.
            http_client=None if _has_userinfo(self.base_url) else openai.DefaultAioHttpClient(),
        )
        # A stream may fall silent for at most `first_token` seconds (the prompt's prefill).
        self._stream_timeout = openai.Timeout(timeouts.total, connect=timeouts.connect,
                                              read=min(timeouts.first_token, timeouts.total))

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        timeouts = self.spec.timeouts
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + timeouts.first_token
        total_deadline = loop.time() + timeouts.total
        started = False
        try:
            async with asyncio.timeout(timeouts.first_token):
                raw = await self._client.chat.completions.with_raw_response.create(
                    model=self.spec.model,
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=self._stream_timeout,
                    **params,  # type: ignore[arg-type]
                )
        except TimeoutError:
            raise ModelTimeout("no response before the first-token timeout") from None
        except Exception as exc:
            raise map_openai_error(exc, started=False) from exc
        # Chunks as plain dicts: the client still decodes the events, raises on error events
        # and handles [DONE], but building a pydantic model per chunk cost ~70 µs, about as
        # much as everything else a streamed answer costs the bot.
        stream = raw.parse(to=openai.AsyncStream[object])

        finish_reason: str | None = None
        usage = Usage()
        splitter = ThinkSplitter()
        try:
            # Silence is bounded by the transport's read timeout (`first_token` seconds between
            # bytes, see `_stream_timeout`); the deadlines are checked as chunks arrive. No
            # timer per chunk: at hundreds of chunks per answer, that cost more than the rest.
            async for chunk in stream:
                if loop.time() > (total_deadline if started else first_deadline):
                    which = "answer" if started else "first token"
                    raise ModelTimeout(f"no {which} within the timeout")
                if not isinstance(chunk, dict):
                    raise StreamBroken("a chunk that is not a JSON object")
                _raise_error_object(chunk)
                if isinstance(counts := chunk.get("usage"), dict):
                    usage = Usage(_count(counts.get("prompt_tokens")),
                                  _count(counts.get("completion_tokens")))
                for choice in (chunk.get("choices") or [])[:1]:
                    delta = choice.get("delta") or {}
                    # A reasoning parser's output: `reasoning_content` (vLLM up to 0.10,
                    # DeepSeek), `reasoning` (newer vLLM, OpenRouter); one of them, as a
                    # server sending both during the rename sends the same text twice.
                    thought = delta.get("reasoning_content") or delta.get("reasoning")
                    if thought and isinstance(thought, str):
                        started = True
                        yield ReasoningDelta(thought)
                    text = delta.get("content")
                    if text and isinstance(text, str):
                        started = True
                        for piece in splitter.feed(text):  # `<think>` in the content
                            yield piece
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        except BackendError:
            raise
        except Exception as exc:
            raise map_openai_error(exc, started=started) from exc
        finally:
            await stream.close()
        if finish_reason is None:
            raise StreamBroken("the stream ended without a finish reason")
        for piece in splitter.flush():
            yield piece
        yield Finished(finish_reason, usage)


def _has_userinfo(url: str) -> bool:
    return urlsplit(url).username is not None


def _count(value: Any) -> int | None:
    """A token count from a server's `usage`, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _raise_error_object(chunk: dict[str, Any]) -> None:
    """Older vLLM sends `{"object": "error", ...}` as a chunk; the client passes it through."""
    if chunk.get("object") == "error":
        raise StreamBroken(str(chunk.get("message", "error inside the stream"))[:300])
