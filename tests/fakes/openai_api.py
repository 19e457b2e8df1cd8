"""Strict fake OpenAI-compatible chat server, shaped like vLLM's and OpenAI's, for tests.

Speaks ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (vLLM's Prometheus text) and
``POST /v1/chat/completions`` (plain and SSE), validates requests like the real servers, and can
inject failures: HTTP errors (also at random, ``fail_rate``), errors after a 200 (in-stream error
objects or a dropped connection), stuck requests and an unhealthy ``/health``. ``max_num_seqs``
bounds concurrent answers like vLLM's batch; the others wait (``vllm:num_requests_waiting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
VALID_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MID_STREAM_MODES = ("error_event", "object_error", "disconnect")
# fmt: off
ERROR_TYPES: dict[int, str] = {
    400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
    404: "NotFoundError", 409: "ConflictError", 422: "UnprocessableEntityError",
    429: "RateLimitError", 500: "InternalServerError", 502: "BadGatewayError",
    503: "ServiceUnavailableError", 504: "GatewayTimeoutError",
}
# fmt: on
DEFAULT_MAX_MODEL_LEN = 4096
TOKENS_PER_MESSAGE = 4
# A reply: its text, the exact pieces to stream it in (odd splits, e.g. a surrogate pair cut in
# two; each piece is one chunk), or a function of the request body giving either.
Reply = str | list[str] | Callable[[dict[str, Any]], str | list[str]]
_BODY = web.RequestKey("body", object)  # parsed JSON body (None if absent or not JSON)
_BAD_JSON = web.RequestKey("bad_json", bool)
_FINISHED = web.RequestKey("finished", bool)  # server is done; a disconnect is not a cancel


def split_tokens(text: str) -> list[str]:
    """Split text into fake tokens: non-space runs with their leading whitespace."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Count fake tokens in ``text`` (see :func:`split_tokens`)."""
    return len(split_tokens(text))


@dataclass
class RecordedRequest:
    """One request as the server received it (headers lower-cased, time is monotonic)."""

    path: str
    headers: dict[str, str]
    json: dict | None
    time: float


@dataclass(frozen=True)
class _MidStreamFailure:
    after_chunks: int
    mode: str
    message: str


class _ApiError(Exception):
    """Raised inside handlers; turned into an OpenAI-shaped JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers

    def response(self) -> web.Response:
        error = {
            "message": self.message,
            "type": ERROR_TYPES.get(self.status, "APIError"),
            "param": None,
            "code": self.status if self.code is None else self.code,
        }
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


def _bad(message: str) -> _ApiError:
    return _ApiError(400, message)


def _text_of(content: Any) -> str:
    """Text of a message content: the string itself or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if p.get("type") == "text")
    return ""


def _check_message(i: int, msg: Any) -> None:
    if not isinstance(msg, dict):
        raise _bad(f"messages[{i}] must be an object")
    role = msg.get("role")
    if role not in VALID_ROLES:
        raise _bad(f"messages[{i}].role must be one of {sorted(VALID_ROLES)}, got {role!r}")
    content = msg.get("content")
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        raise _bad(f"messages[{i}]: tool messages need a string tool_call_id")
    if isinstance(content, str) or (role == "assistant" and msg.get("tool_calls") and not content):
        return
    if not isinstance(content, list):
        raise _bad(f"messages[{i}].content must be a string or a list of content parts")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        image = part.get("image_url") if kind == "image_url" else None
        text_ok = kind == "text" and isinstance(part.get("text"), str)
        if not text_ok and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
            raise _bad(f"messages[{i}].content[{j}] is not a valid text or image_url part")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FakeModelServer:
    """In-process aiohttp server that imitates an OpenAI-compatible (vLLM) chat endpoint."""

    def __init__(
        self,
        models: dict[str, int] | list[str] | None = None,
        *,
        api_key: str | None = None,
        tokens_per_chunk: int = 2,
        chunk_delay: float = 0.0,
        first_token_delay: float = 0.0,
        max_num_seqs: int | None = None,
    ) -> None:
        if models is None:
            models = {"fake-model": DEFAULT_MAX_MODEL_LEN}
        elif isinstance(models, list):
            models = dict.fromkeys(models, DEFAULT_MAX_MODEL_LEN)
        self.models: dict[str, int] = dict(models)
        self.api_key = api_key
        self.tokens_per_chunk = tokens_per_chunk
        self.chunk_delay = chunk_delay
        self.first_token_delay = first_token_delay
        self.requests: list[RecordedRequest] = []
        self.cancelled_requests = 0  # requests whose client went away before the end
        self.healthy = True  # False: /health answers 503 (vLLM's EngineDeadError)
        self.fail_rate = 0.0  # chance that a chat request gets a 500 (drawn from ``rng``)
        self.rng = random.Random(0)
        # Extra /metrics samples, e.g. {"vllm:num_requests_waiting": 3,
        # "vllm:spec_decode_num_drafts_total": 10}; they override the live running/waiting.
        self.metrics: dict[str, float] = {}
        self.running = 0  # chat requests being answered now
        self.waiting = 0  # chat requests queued for a free slot (see max_num_seqs)
        self._slots = asyncio.Semaphore(max_num_seqs) if max_num_seqs else None
        self._replies: dict[str, Reply] = {}
        self._failures: list[_ApiError] = []
        self._mid_stream: list[_MidStreamFailure] = []
        self._hangs: list[float] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._stopping = False
        self._created = int(time.time())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening; ``port=0`` picks a free port."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._host = host
        self._port = int(self._runner.addresses[0][1])
        self._stopping = False

    async def stop(self) -> None:
        """Cancel in-flight requests (e.g. hung ones) and shut the server down."""
        self._stopping = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """OpenAI ``base_url`` of the running server, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._port is None:
            raise RuntimeError("FakeModelServer is not started")
        return f"http://{self._host}:{self._port}/v1"

    def chat_requests(self) -> list[dict]:
        """JSON bodies of ``/v1/chat/completions`` calls, in order (unparsable bodies skipped)."""
        return [
            r.json for r in self.requests if r.path == "/v1/chat/completions" and r.json is not None
        ]

    def set_reply(self, model: str, reply: Reply) -> None:
        """Fix ``model``'s reply text, or compute it from the request body with a callable.

        A list of strings is streamed exactly as those pieces, one chunk each (JSON-escaped as
        any server does, so a lone surrogate half arrives as ``\\udXXX``). ``""`` is an
        empty answer: no content chunk, then ``finish_reason: "stop"``.
        """
        self._replies[model] = reply

    def fail_next(
        self,
        status: int,
        *,
        message: str = "fake server error",
        times: int = 1,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` chat requests with HTTP ``status`` and an error body."""
        self._failures += [_ApiError(status, message, code=code, headers=headers)] * times

    def fail_mid_stream_next(
        self,
        *,
        after_chunks: int = 2,
        mode: str = "error_event",
        message: str = "engine error",
        times: int = 1,
    ) -> None:
        """Break the next ``times`` *streamed* chat requests after ``after_chunks`` content chunks.

        Non-streamed requests do not consume these failures.
        """
        if mode not in MID_STREAM_MODES:
            raise ValueError(f"mode must be one of {MID_STREAM_MODES}")
        self._mid_stream.extend([_MidStreamFailure(after_chunks, mode, message)] * times)

    def hang_next(self, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` chat requests wait ``seconds`` before answering anything."""
        self._hangs.extend([seconds] * times)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            body: Any = None
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    request[_BAD_JSON] = True
            self.requests.append(
                RecordedRequest(
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=body if isinstance(body, dict) else None,
                    time=time.monotonic(),
                )
            )
            request[_BODY] = body
            auth = request.headers.get("Authorization")
            needs_key = self.api_key is not None and request.path.startswith("/v1/")
            if needs_key and auth != f"Bearer {self.api_key}":
                raise _ApiError(401, "Incorrect API key provided", code="invalid_api_key")
            return await handler(request)
        except _ApiError as err:
            return err.response()
        except (asyncio.CancelledError, ConnectionResetError):
            if not self._stopping and not request.get(_FINISHED):
                self.cancelled_requests += 1
            raise
        finally:
            self._tasks.discard(task)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        values = {
            "vllm:num_requests_running": self.running,
            "vllm:num_requests_waiting": self.waiting,
            **self.metrics,
        }
        labels = f'{{engine="0",model_name="{next(iter(self.models), "")}"}}'
        lines: list[str] = []
        for name, value in values.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# TYPE {name.removesuffix('_total')} {kind}", f"{name}{labels} {value}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_num_seqs`` answer slots; queued requests count as waiting."""
        self.waiting += 1
        try:
            if self._slots is not None:
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if self._slots is not None:
                self._slots.release()

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [
            dict(id=name, object="model", created=self._created, owned_by="fake", max_model_len=n)
            for name, n in self.models.items()
        ]
        return web.json_response({"object": "list", "data": data})

    def _validate(self, request: web.Request) -> tuple[dict[str, Any], int | None]:
        """Validate a chat body; return it and its completion-token limit (if any)."""
        body = request[_BODY]
        if request.get(_BAD_JSON) or not isinstance(body, dict):
            raise _bad("Request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("you must provide a model parameter")
        if model not in self.models:
            raise _ApiError(404, f"The model `{model}` does not exist.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("'messages' must be a non-empty list")
        for i, msg in enumerate(messages):
            _check_message(i, msg)
        temperature = body.get("temperature")
        if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
            raise _bad(f"temperature must be between 0 and 2, got {temperature!r}")
        limit: int | None = None
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _bad(f"{key} must be a positive integer, got {value!r}")
            limit = value  # max_completion_tokens wins over the legacy max_tokens
        stream = body.get("stream", False)
        if not isinstance(stream, bool) and stream is not None:
            raise _bad("stream must be a boolean")
        options = body.get("stream_options")
        if options is not None:
            if not stream:
                raise _bad("Stream options can only be defined when `stream=True`.")
            if not isinstance(options, dict):
                raise _bad("stream_options must be an object")
        return body, limit

    def _reply_for(self, body: dict[str, Any]) -> str | list[str]:
        model = body["model"]
        reply = self._replies.get(model)
        if isinstance(reply, str | list):
            return reply
        if reply is not None:
            return reply(body)
        users = [m for m in body["messages"] if m.get("role") == "user"]
        return f"[{model}] " + (_text_of(users[-1].get("content")) if users else "")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self._hangs:
            await asyncio.sleep(self._hangs.pop(0))
        if self._failures:
            raise self._failures.pop(0)
        if self.fail_rate and self.rng.random() < self.fail_rate:
            raise _ApiError(500, "fake random failure")
        body, limit = self._validate(request)
        async with self._slot():
            return await self._answer(request, body, limit)

    async def _answer(
        self, request: web.Request, body: dict[str, Any], limit: int | None
    ) -> web.StreamResponse:
        model = body["model"]
        max_len = self.models[model]
        prompt = sum(count_tokens(_text_of(m.get("content"))) for m in body["messages"])
        prompt += TOKENS_PER_MESSAGE * len(body["messages"])
        if prompt + (limit or 0) > max_len or prompt >= max_len:
            raise _ApiError(
                400,
                f"This model's maximum context length is {max_len} tokens. However, you "
                f"requested {prompt + (limit or 0)} tokens ({prompt} in the messages, "
                f"{limit or 0} in the completion). Please reduce the length of the messages "
                "or completion.",
                code="context_length_exceeded",
            )
        reply = self._reply_for(body)
        exact = reply if isinstance(reply, list) else None
        tokens = split_tokens("".join(reply) if exact is not None else reply)
        cap = limit if limit is not None else max_len - prompt
        finish = "length" if len(tokens) > cap else "stop"
        tokens = tokens[:cap]
        n_out = len(tokens)
        usage = dict(prompt_tokens=prompt, completion_tokens=n_out, total_tokens=prompt + n_out)
        n = max(1, self.tokens_per_chunk)
        pieces = ["".join(tokens[i : i + n]) for i in range(0, len(tokens), n)]
        if exact is not None and finish == "stop":
            pieces = [piece for piece in exact if piece]
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            failure = self._mid_stream.pop(0) if self._mid_stream else None
            return await self._stream(request, meta, pieces, finish, usage, include_usage, failure)
        if pieces:  # a non-streamed answer takes as long as the streamed one would
            await asyncio.sleep(self.first_token_delay + self.chunk_delay * (len(pieces) - 1))
        message = {"role": "assistant", "content": "".join(pieces)}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return web.json_response(
            {**meta, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    async def _stream(
        self,
        request: web.Request,
        meta: dict[str, Any],
        pieces: list[str],
        finish: str,
        usage: dict[str, int],
        include_usage: bool,
        failure: _MidStreamFailure | None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)

        async def send(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await resp.write(f"data: {text}\n\n".encode())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**meta, "object": "chat.completion.chunk", "choices": [choice]}

        await send(chunk({"role": "assistant", "content": ""}))
        for i, piece in enumerate(pieces):
            if failure is not None and i >= failure.after_chunks:
                break
            delay = self.first_token_delay if i == 0 else self.chunk_delay
            if delay > 0:
                await asyncio.sleep(delay)
            await send(chunk({"content": piece}))
        if failure is not None:
            return await self._break_stream(request, resp, send, failure)
        await send(chunk({}, finish))
        if include_usage:
            await send({**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        await send("[DONE]")
        request[_FINISHED] = True
        await resp.write_eof()
        return resp

    async def _break_stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        failure: _MidStreamFailure,
    ) -> web.StreamResponse:
        request[_FINISHED] = True  # the server ends it; not a client cancellation
        if failure.mode == "disconnect":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0)  # let aiohttp notice; nothing more can be sent
            return resp
        err = dict(message=failure.message, type="InternalServerError", param=None, code=500)
        # error_event: vLLM's in-stream error; object_error: older vLLM's top-level ErrorResponse
        await send({"error": err} if failure.mode == "error_event" else {"object": "error", **err})
        await resp.write_eof()
        return resp
