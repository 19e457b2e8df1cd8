"""Strict fake OpenAI-compatible chat server, shaped like vLLM's (recorded) or OpenAI's, for tests.

Speaks ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (vLLM's Prometheus text),
``POST /v1/chat/completions`` (plain and SSE) and ``POST /v1/audio/transcriptions`` (multipart,
for the models in ``audio_models``; see ``set_transcript``), validates requests like the real
servers, and can inject failures: HTTP errors (also at random, ``fail_rate``), errors after a
200 (in-stream error objects or a dropped connection), stuck requests and an unhealthy
``/health``. ``max_num_seqs`` bounds concurrent answers like vLLM's batch; the others wait
(``vllm:num_requests_waiting``).

Two flavours:

- ``"vllm"`` (the default): vLLM 0.32 as recorded in ``tests/fakes/recordings/vllm-0.32.0``
  (``tests/unit/test_fake_vllm_recordings.py`` fails when the fake and the recordings diverge;
  the rules are in ``tests/fakes/vllm_rules.py``). Also ``GET /version`` and ``POST /tokenize``;
  every key vLLM's answers carry; pydantic-style validation errors; a prompt over the context is
  refused, but prompt + max_tokens over it is not (max_tokens is capped, finish "length");
  errors inside a stream end with ``[DONE]``; ``/metrics`` with HELP, TYPE and ``_created``
  samples; with ``num_speculative_tokens`` the spec-decode counters move as answers stream.
- ``"openai"``: the generic OpenAI-like behaviour this fake had before the recordings, kept for
  tests of catalogue entries with ``backend: openai``: prompt + max_tokens over the context is a
  400 ``context_length_exceeded`` ("you requested N tokens (P in the messages, C in the
  completion)"), only the standard roles, a 401 ``invalid_api_key``, no ``/version`` or
  ``/tokenize``. It is not recorded from OpenAI.

The fake's tokens are whitespace-delimited words (:func:`split_tokens`); a prompt costs its
contents' tokens plus ``TOKENS_PER_MESSAGE`` per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Literal, Self

from aiohttp import web

from tests.fakes import vllm_rules
from tests.fakes.vllm_rules import ApiError, ChatRequest

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
VALID_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MID_STREAM_MODES = ("error_event", "object_error", "disconnect")
ERROR_TYPES = ApiError.TYPES
DEFAULT_MAX_MODEL_LEN = 4096
MAX_AUDIO = 25 * 1024 * 1024  # OpenAI's limit on an uploaded audio file
MAX_BODY = 64 * 1024 * 1024  # requests with images (data URLs) are large
AUDIO_FORMATS = ("json", "text", "verbose_json")
TOKENS_PER_MESSAGE = 4
Flavour = Literal["vllm", "openai"]
ReasoningShape = Literal["reasoning", "reasoning_content", "think"]


@dataclass(frozen=True)
class Thinking:
    """A reasoning model's reply: `reasoning`, then the answer `content`, shaped as

    - ``"reasoning"``: delta ``{"reasoning": …}`` chunks, as vLLM with a ``--reasoning-parser``
      sends them now (0.32 answers carry ``message.reasoning``) and OpenRouter;
    - ``"reasoning_content"``: delta ``{"reasoning_content": …}``, as vLLM up to 0.10 and
      DeepSeek's API (which also says ``"content": null`` in those chunks: the openai flavour);
    - ``"think"``: no parser: ``<think>…</think>`` inside the content (Qwen3, R1 distills).

    Reasoning tokens count against ``max_tokens`` first, as on the real servers.
    """

    reasoning: str
    content: str | list[str] = ""
    shape: ReasoningShape = "reasoning"


# A reply: its text, the exact pieces to stream it in (odd splits, e.g. a surrogate pair cut in
# two; each piece is one chunk), a reasoning model's `Thinking`, or a function of the request
# body giving any of them.
Reply = (str | list[str] | Thinking
         | Callable[[dict[str, Any]], str | list[str] | Thinking])
_BODY = web.RequestKey("body", object)  # parsed JSON body (None if absent or not JSON)
_RAW = web.RequestKey("raw", bytes)
_BAD_JSON = web.RequestKey("bad_json", bool)
_FINISHED = web.RequestKey("finished", bool)  # server is done; a disconnect is not a cancel
_METRIC_LABELS = '{{engine="0",model_name="{}"}}'
_SPEC = ("vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total",
         "vllm:spec_decode_num_accepted_tokens_total")


def split_tokens(text: str) -> list[str]:
    """Split text into fake tokens: non-space runs with their leading whitespace."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Count fake tokens in ``text`` (see :func:`split_tokens`)."""
    return len(split_tokens(text))


def token_id(token: str) -> int:
    """A stable id for a fake token (for ``/tokenize``)."""
    return zlib.crc32(token.encode("utf-8", "surrogatepass")) % 50_000 + 100


@dataclass
class RecordedRequest:
    """One request as the server received it (headers lower-cased, time is monotonic)."""

    path: str
    headers: dict[str, str]
    json: dict | None
    time: float


@dataclass
class TranscriptionRequest:
    """One ``/v1/audio/transcriptions`` call as received (the file's bytes, not just size)."""

    model: str | None
    filename: str | None
    content_type: str | None
    audio: bytes | None
    fields: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class _MidStreamFailure:
    after_chunks: int
    mode: str
    message: str
    status: int


@dataclass
class _Chat:
    """A validated chat request: its body, model, token budget and stream options."""

    body: dict[str, Any]
    model: str
    limit: int | None  # completion tokens allowed (None: up to the context)
    stream: bool
    include_usage: bool
    prompt: int  # prompt tokens
    refusal: ApiError | None = None  # vLLM refuses it once the stream has started


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _text_of(content: Any) -> str:
    """Text of a message content: the string itself or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if p.get("type") == "text")
    return ""


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return (sum(count_tokens(_text_of(m.get("content"))) for m in messages)
            + TOKENS_PER_MESSAGE * len(messages))


def _rendered(messages: list[dict[str, Any]]) -> str:
    """The prompt as a chat template would write it (the recorded tiny model's template)."""
    return "".join(f"<|{m.get('role')}|>{_text_of(m.get('content'))}\n" for m in messages) + (
        "<|assistant|>")


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
        flavour: Flavour = "vllm",
        api_key: str | None = None,
        tokens_per_chunk: int = 2,
        chunk_delay: float = 0.0,
        first_token_delay: float = 0.0,
        max_num_seqs: int | None = None,
        num_speculative_tokens: int | None = None,
    ) -> None:
        if flavour not in ("vllm", "openai"):
            raise ValueError("flavour must be 'vllm' or 'openai'")
        if models is None:
            models = {"fake-model": DEFAULT_MAX_MODEL_LEN}
        elif isinstance(models, list):
            models = dict.fromkeys(models, DEFAULT_MAX_MODEL_LEN)
        self.models: dict[str, int] = dict(models)
        self.flavour: Flavour = flavour
        self.api_key = api_key
        self.tokens_per_chunk = tokens_per_chunk
        self.chunk_delay = chunk_delay
        self.first_token_delay = first_token_delay
        # vLLM flavour: a draft model proposing this many tokens a step; each chunk of n tokens
        # is one step that accepted n - 1 of them (the spec-decode counters in /metrics).
        self.num_speculative_tokens = num_speculative_tokens
        self.spec_counts = [0, 0, 0]  # drafts, draft tokens, accepted tokens
        self.requests: list[RecordedRequest] = []
        self.cancelled_requests = 0  # requests whose client went away before the end
        self.healthy = True  # False: /health answers 503 (vLLM's EngineDeadError)
        self.fail_rate = 0.0  # chance that a chat request gets a 500 (drawn from ``rng``)
        self.rng = random.Random(0)
        # Extra /metrics samples, e.g. {"vllm:num_requests_waiting": 3,
        # "vllm:spec_decode_num_drafts_total": 10}; they override the live figures.
        self.metrics: dict[str, float] = {}
        self.running = 0  # chat requests being answered now
        self.waiting = 0  # chat requests queued for a free slot (see max_num_seqs)
        self._slots = asyncio.Semaphore(max_num_seqs) if max_num_seqs else None
        self._replies: dict[str, Reply] = {}
        # Speech to text: the models that serve it, and what registered audio says.
        self.audio_models: set[str] = set()
        self._transcripts: dict[bytes, str] = {}
        self.transcription_requests: list[TranscriptionRequest] = []
        self._failures: list[ApiError] = []
        self._mid_stream: list[_MidStreamFailure] = []
        self._hangs: list[float] = []
        self._gate: asyncio.Event | None = None  # see hold()
        self.held = 0  # streamed requests waiting at the gate now
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._stopping = False
        self._created = int(time.time())
        self._started_at = time.time()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening; ``port=0`` picks a free port."""
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        if self.flavour == "vllm":
            app.router.add_get("/version", self._version)
            app.router.add_post("/tokenize", self._tokenize)
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
    def root(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:PORT`` (``/health``, ``/metrics``)."""
        if self._port is None:
            raise RuntimeError("FakeModelServer is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """OpenAI ``base_url`` of the running server, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root}/v1"

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

    def set_transcript(self, audio: bytes, text: str) -> None:
        """What ``audio`` says (other audio transcribes to "", as silence does)."""
        self._transcripts[audio] = text

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
        self._failures += [ApiError(status, message, code=code, headers=headers)] * times

    def fail_mid_stream_next(
        self,
        *,
        after_chunks: int = 2,
        mode: str = "error_event",
        message: str = "engine error",
        times: int = 1,
        status: int = 500,
    ) -> None:
        """Break the next ``times`` *streamed* chat requests after ``after_chunks`` content chunks.

        ``error_event`` sends ``{"error": {…, "code": status}}`` (vLLM then still sends
        ``[DONE]``), ``object_error`` older vLLM's top-level error object, ``disconnect`` drops
        the connection. Non-streamed requests do not consume these failures.
        """
        if mode not in MID_STREAM_MODES:
            raise ValueError(f"mode must be one of {MID_STREAM_MODES}")
        self._mid_stream.extend([_MidStreamFailure(after_chunks, mode, message, status)] * times)

    def hang_next(self, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` chat requests wait ``seconds`` before answering anything."""
        self._hangs.extend([seconds] * times)

    def hold(self) -> None:
        """Hold streamed answers open (headers sent, no chunk yet) until `release()`: a slow
        answer that ends exactly when the test says. Keep it shorter than the client's
        first-token timeout."""
        if self._gate is None:
            self._gate = asyncio.Event()

    def release(self) -> None:
        """Let the held answers (and later ones) stream."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def _error_response(self, err: ApiError) -> web.Response:
        body = err.body()
        separators = (",", ":") if self.flavour == "vllm" else None
        return web.json_response(body, status=err.status, headers=err.headers,
                                 dumps=lambda data: json.dumps(data, separators=separators))

    def _unauthorized(self) -> ApiError:
        if self.flavour == "vllm":  # vllm/entrypoints/serve/middleware/authenticate.py
            return ApiError(401, "Unauthorized", body={"error": "Unauthorized"})
        return ApiError(401, "Incorrect API key provided", code="invalid_api_key")

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
            request[_RAW] = raw
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
                raise self._unauthorized()
            return await handler(request)
        except ApiError as err:
            return self._error_response(err)
        except (asyncio.CancelledError, ConnectionResetError):
            if not self._stopping and not request.get(_FINISHED):
                self.cancelled_requests += 1
            raise
        finally:
            self._tasks.discard(task)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": vllm_rules.VERSION})

    def _metric_values(self) -> dict[str, float]:
        values: dict[str, float] = {
            "vllm:num_requests_running": self.running,
            "vllm:num_requests_waiting": self.waiting,
        }
        if self.flavour == "vllm":
            values["vllm:kv_cache_usage_perc"] = 0.0
            if self.num_speculative_tokens:
                values.update(zip(_SPEC, self.spec_counts, strict=True))
        return {**values, **self.metrics}

    async def _metrics(self, request: web.Request) -> web.Response:
        values = self._metric_values()
        labels = _METRIC_LABELS.format(next(iter(self.models), ""))
        if self.flavour == "vllm":
            text = vllm_rules.render_metrics(values, labels, self._started_at)
            return web.Response(text=text, content_type="text/plain")
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
        if self.flavour == "vllm":
            data = [vllm_rules.model_entry(name, n, self._created, f"modelperm-{_hex()}")
                    for name, n in self.models.items()]
        else:
            data = [dict(id=name, object="model", created=self._created, owned_by="fake",
                         max_model_len=n) for name, n in self.models.items()]
        return web.json_response({"object": "list", "data": data})

    def _model_of(self, model: Any) -> str:
        """vLLM: no model means the (first) served one; an unknown one is a 404."""
        if model is None:
            return next(iter(self.models))
        if model not in self.models:
            raise vllm_rules.unknown_model(str(model), list(self.models))
        return str(model)

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = vllm_rules.parse_body(request[_RAW])
        model = self._model_of(body.get("model"))
        messages = body.get("messages")
        if isinstance(messages, list):
            tokens = [0] * TOKENS_PER_MESSAGE * len(messages)
            tokens += [token_id(t) for m in messages if isinstance(m, dict)
                       for t in split_tokens(_text_of(m.get("content")))]
        elif isinstance(body.get("prompt"), str):
            tokens = [token_id(t) for t in split_tokens(body["prompt"])]
        else:
            raise vllm_rules.validation_error([{
                "type": "missing", "loc": "body.prompt", "msg": "Field required",
                "input": vllm_rules.summarize(body)}])
        return web.json_response({"count": len(tokens), "max_model_len": self.models[model],
                                  "tokens": tokens, "token_strs": None})

    def _validate_openai(self, request: web.Request) -> _Chat:
        """The generic OpenAI-like checks (the ``openai`` flavour)."""
        body = request[_BODY]
        if request.get(_BAD_JSON) or not isinstance(body, dict):
            raise _bad("Request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("you must provide a model parameter")
        if model not in self.models:
            raise ApiError(404, f"The model `{model}` does not exist.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("'messages' must be a non-empty list")
        for i, msg in enumerate(messages):
            _check_message(i, msg)
        temperature = body.get("temperature")
        if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
            raise _bad(f"temperature must be between 0 and 2, got {temperature!r}")
        top_p = body.get("top_p")
        if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
            raise _bad(f"top_p must be between 0 and 1, got {top_p!r}")
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
        max_len = self.models[model]
        prompt = _prompt_tokens(messages)
        if prompt + (limit or 0) > max_len or prompt >= max_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {max_len} tokens. However, you "
                f"requested {prompt + (limit or 0)} tokens ({prompt} in the messages, "
                f"{limit or 0} in the completion). Please reduce the length of the messages "
                "or completion.",
                code="context_length_exceeded",
            )
        include_usage = bool((options or {}).get("include_usage"))
        return _Chat(body, model, limit, bool(stream), include_usage, prompt)

    def _validate_vllm(self, request: web.Request) -> _Chat:
        """vLLM's checks, in its order (see tests/fakes/vllm_rules.py)."""
        body = vllm_rules.parse_body(request[_RAW])
        checked: ChatRequest = vllm_rules.validate_chat(body)
        model = self._model_of(checked.model)
        messages = checked.messages
        prompt = _prompt_tokens(messages)
        limit = vllm_rules.check_lengths(checked, self.models[model], len(_rendered(messages)),
                                         prompt)
        refusal = vllm_rules.speculative_refusal(checked) if self.num_speculative_tokens else None
        if refusal is not None and not checked.stream:
            raise refusal
        return _Chat({**body, "model": model}, model, limit, checked.stream,
                     checked.include_usage, prompt, refusal)

    def _reply_for(self, body: dict[str, Any]) -> str | list[str] | Thinking:
        model = body["model"]
        reply = self._replies.get(model)
        if isinstance(reply, str | list | Thinking):
            return reply
        if reply is not None:
            return reply(body)
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        return f"[{model}] " + (_text_of(users[-1].get("content")) if users else "")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self._hangs:
            await asyncio.sleep(self._hangs.pop(0))
        if self._failures:
            raise self._failures.pop(0)
        if self.fail_rate and self.rng.random() < self.fail_rate:
            raise ApiError(500, "fake random failure")
        chat = self._validate_vllm(request) if self.flavour == "vllm" else (
            self._validate_openai(request))
        async with self._slot():
            return await self._answer(request, chat)

    async def _transcription(self, request: web.Request) -> web.Response:
        """OpenAI's ``/v1/audio/transcriptions``: multipart with ``file`` and ``model``."""
        if self._failures:
            raise self._failures.pop(0)
        raw = request[_RAW]
        if request.content_type != "multipart/form-data":
            raise _bad("Invalid Content-Type header: expected multipart/form-data")
        head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        parsed = BytesParser(policy=HTTP).parsebytes(head + raw)
        fields: dict[str, str] = {}
        file_part = None
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file" and part.get_filename() is not None:
                file_part = part
            elif isinstance(name, str):
                fields[name] = (part.get_payload(decode=True) or b"").decode()
        audio = file_part.get_payload(decode=True) if file_part is not None else None
        self.transcription_requests.append(TranscriptionRequest(
            fields.get("model"), file_part.get_filename() if file_part else None,
            file_part.get_content_type() if file_part else None, audio, fields,
            {k.lower(): v for k, v in request.headers.items()}))
        if audio is None:
            raise ApiError(400, "1 validation error for Request\nbody -> file\n  field required")
        if len(audio) > MAX_AUDIO:
            raise ApiError(413, f"Maximum content size limit ({MAX_AUDIO}) exceeded "
                           f"({len(audio)} bytes read)")
        model = fields.get("model")
        if not model:
            raise _bad("you must provide a model parameter")
        if model not in self.audio_models:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have "
                           "access to it.", code="model_not_found")
        response_format = fields.get("response_format", "json")
        if response_format not in AUDIO_FORMATS:
            raise _bad(f"response_format must be one of {', '.join(AUDIO_FORMATS)}")
        text = self._transcripts.get(audio, "")
        if response_format == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        return web.json_response({"text": text})

    def _count_steps(self, pieces: list[str]) -> None:
        """Speculative decoding: each chunk is one target step over a draft of k tokens."""
        k = self.num_speculative_tokens
        if not k:
            return
        for piece in pieces:
            n = max(1, count_tokens(piece))
            self.spec_counts[0] += 1
            self.spec_counts[1] += k
            self.spec_counts[2] += min(n - 1, k)

    async def _answer(self, request: web.Request, chat: _Chat) -> web.StreamResponse:
        reply = self._reply_for(chat.body)
        thinking: Thinking | None = None
        if isinstance(reply, Thinking):
            thinking, reply = reply, reply.content
            if thinking.shape == "think":  # no reasoning parser: the tags are content
                reply = f"<think>\n{thinking.reasoning}\n</think>\n\n{''.join(reply)}"
                thinking = None
        exact = reply if isinstance(reply, list) else None
        tokens = split_tokens("".join(reply) if exact is not None else reply)
        cap = chat.limit if chat.limit is not None else self.models[chat.model] - chat.prompt
        thought = split_tokens(thinking.reasoning)[:cap] if thinking is not None else []
        cap -= len(thought)
        finish = "length" if len(tokens) > cap else "stop"
        tokens = tokens[:cap]
        n_out = len(thought) + len(tokens)
        usage: dict[str, Any] = dict(prompt_tokens=chat.prompt, completion_tokens=n_out,
                                     total_tokens=chat.prompt + n_out)
        shape = thinking.shape if thinking is not None else None
        # vLLM with a reasoning parser counts the reasoning apart (0.32, streamed or not).
        details = ({"reasoning_tokens": len(thought)}
                   if self.flavour == "vllm" and shape is not None else None)
        if details is not None:
            usage["completion_tokens_details"] = details
        n = max(1, self.tokens_per_chunk)
        pieces = ["".join(tokens[i : i + n]) for i in range(0, len(tokens), n)]
        if exact is not None and finish == "stop":
            pieces = [piece for piece in exact if piece]
        reasoning = ["".join(thought[i : i + n]) for i in range(0, len(thought), n)]
        meta = {"id": f"chatcmpl-{_hex()}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": chat.model}
        if chat.stream:
            if chat.refusal is not None:  # vLLM: before the first chunk, inside the 200
                failure = _MidStreamFailure(0, "error_event", chat.refusal.message, 400)
            else:
                failure = self._mid_stream.pop(0) if self._mid_stream else None
            return await self._stream(request, chat, meta, pieces, finish, usage, failure,
                                      reasoning, shape)
        steps = len(reasoning) + len(pieces)
        if steps:  # a non-streamed answer takes as long as the streamed one would
            await asyncio.sleep(self.first_token_delay + self.chunk_delay * (steps - 1))
        self._count_steps(reasoning + pieces)
        answer = {**meta, "object": "chat.completion"}
        message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        thought_text = "".join(reasoning) if shape is not None else None
        if self.flavour == "vllm":
            message.update(refusal=None, annotations=None, audio=None, function_call=None,
                           reasoning=thought_text)
            if shape is not None and not message["content"]:  # its parser: no answer is null
                message["content"] = None
            if shape == "reasoning_content":
                message["reasoning_content"] = thought_text
            choice.update(stop_reason=None, token_ids=None, routed_experts=None)
            answer.update(choices=[choice], service_tier=None,
                          system_fingerprint=vllm_rules.SYSTEM_FINGERPRINT,
                          usage={**usage, "prompt_tokens_details": None,
                                 "completion_tokens_details": details},
                          prompt_logprobs=None, prompt_token_ids=None, prompt_text=None,
                          kv_transfer_params=None, ec_transfer_params=None, metrics=None)
        else:
            if shape is not None:
                message[shape] = thought_text
            answer.update(choices=[choice], usage=usage)
        return web.json_response(answer)

    async def _stream(
        self,
        request: web.Request,
        chat: _Chat,
        meta: dict[str, Any],
        pieces: list[str],
        finish: str,
        usage: dict[str, Any],
        failure: _MidStreamFailure | None,
        reasoning: list[str] | None = None,
        shape: ReasoningShape | None = None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        gate = self._gate
        if gate is not None:
            self.held += 1
            try:
                await gate.wait()
            finally:
                self.held -= 1
        vllm = self.flavour == "vllm"

        async def send(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(
                data, separators=(",", ":") if vllm else None)
            await resp.write(f"data: {text}\n\n".encode())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            if vllm:  # vLLM's content chunks say token_ids, its finish chunk stop_reason too
                choice.update({"stop_reason": None} if finish_reason else {}, token_ids=None)
            found = {**meta, "choices": [choice]}
            if vllm and finish_reason and not chat.include_usage:
                found["system_fingerprint"] = vllm_rules.SYSTEM_FINGERPRINT
            return found

        if failure is not None and failure.after_chunks == 0 and chat.refusal is not None:
            return await self._break_stream(request, resp, send, failure)
        role = chunk({"role": "assistant", "content": ""})
        if vllm:
            del role["choices"][0]["token_ids"]
            role.update(prompt_token_ids=None, prompt_text=None)
        await send(role)
        # Reasoning chunks come first (DeepSeek's say "content": null beside them).
        steps = [({shape: piece} if vllm else {"content": None, shape: piece})
                 for piece in reasoning or []]
        steps += [{"content": piece} for piece in pieces]
        # vLLM puts a length finish on the last piece; a stop (EOS) comes as a chunk of its own.
        last_carries_finish = vllm and finish == "length" and bool(steps)
        for i, delta in enumerate(steps):
            if failure is not None and i >= failure.after_chunks:
                break
            delay = self.first_token_delay if i == 0 else self.chunk_delay
            if delay > 0:
                await asyncio.sleep(delay)
            self._count_steps([next(iter(v for v in delta.values() if v))])
            ends = last_carries_finish and i == len(steps) - 1
            await send(chunk(delta, finish if ends else None))
        if failure is not None:
            return await self._break_stream(request, resp, send, failure)
        if not last_carries_finish:
            await send(chunk({"content": ""} if vllm else {}, finish))
        if chat.include_usage:
            tail: dict[str, Any] = {**meta, "choices": [], "usage": usage}
            if vllm:
                tail["system_fingerprint"] = vllm_rules.SYSTEM_FINGERPRINT
            await send(tail)
        await send("[DONE]")
        request[_FINISHED] = True
        await resp.write_eof()
        return resp

    async def _break_stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        send: Callable[[dict[str, Any] | str], Awaitable[None]],
        failure: _MidStreamFailure,
    ) -> web.StreamResponse:
        request[_FINISHED] = True  # the server ends it; not a client cancellation
        if failure.mode == "disconnect":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0)  # let aiohttp notice; nothing more can be sent
            return resp
        err = dict(message=failure.message, type=ERROR_TYPES.get(failure.status, "APIError"),
                   param=None, code=failure.status)
        if failure.mode == "error_event":  # vLLM's in-stream error (json.dumps' own spacing)
            await resp.write(f"data: {json.dumps({'error': err})}\n\n".encode())
            if self.flavour == "vllm":
                await send("[DONE]")
        else:  # object_error: older vLLM's top-level ErrorResponse
            await send({"object": "error", **err})
        await resp.write_eof()
        return resp


def _hex() -> str:
    return uuid.uuid4().hex[:16]
