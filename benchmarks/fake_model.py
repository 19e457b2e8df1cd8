"""A lean OpenAI-compatible streaming model for `benchmarks.load`: one fixed answer, cheap to serve.

`tests.fakes.openai_api.FakeModelServer` validates every request and builds each chunk with
`json.dumps` and a sleep of its own; at 40 answers/s × 236 chunks that is most of a core, on a
machine whose other core runs the bot. Here the chunks are bytes made once, and a stream writes
all the chunks that are due in one go (as TCP would deliver a burst), so the model keeps its
speed when the benchmark process is busy.

Serves `GET /v1/models`, `GET /health`, `GET /metrics` (the vLLM gauges the bot's health checks
read), `POST /tokenize` (a length estimate) and `POST /v1/chat/completions` (streamed chunks,
the finish chunk, a usage chunk, `[DONE]`). Each chat request is keyed by the (user, turn) of
its last user message ("Question 3 from user 10000017: …") and records when it arrived and
when the last chunk was written.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

QUESTION = re.compile(r"Question (\d+) from user (\d+)")
TAG = re.compile(r"\(user (\d+), turn (\d+)\)")  # in the answer's heading
_TAG_SLOT = "\x00"

# ~308 tokens of a typical chat answer, in 236 chunks: a heading, a paragraph with bold and
# code, a list, a short fenced block. The heading names the turn it answers (see `TAG`).
ANSWER = f"""## Pooling database connections {_TAG_SLOT}

A **connection pool** keeps a few connections open and lends them out, so a request does not \
pay for the TCP and authentication handshake each time. With `asyncpg` you create the pool \
once at start-up and share it between tasks: `acquire()` hands out a connection and takes it \
back when the block ends.

Things to watch:

- **Size**: `min_size` connections open at once, up to `max_size` under load. More is not \
faster: Postgres runs one process per connection.
- **Transactions**: keep them short and never wait for the network inside one, or the \
connection sits *idle in transaction* and holds its locks.
- **Timeouts**: set `command_timeout`, so that a stuck query cannot keep a connection forever.
- **Shutdown**: close the pool, so the server sees clean disconnects.
- **Statements**: prepared statements are cached per connection, which a pooler in \
transaction mode (PgBouncer) does not keep.

```python
pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
async with pool.acquire() as conn:
    async with conn.transaction():
        await conn.execute("UPDATE jobs SET done = true WHERE id = $1", job_id)
```

Measure before tuning: `pg_stat_activity` shows what every connection is doing right now, \
and `pg_stat_database` counts the transactions."""
COMPLETION_TOKENS = 308
CHUNKS = 236


def answer_for(user: int, turn: int) -> str:
    return ANSWER.replace(_TAG_SLOT, f"(user {user}, turn {turn})")


def split_answer(text: str = ANSWER, chunks: int = CHUNKS) -> list[str]:
    """`text` in `chunks` pieces of one or two word-or-punctuation tokens, evenly spread."""
    tokens = re.findall(r"\s*(?:\w+|[^\w\s]+)", text)
    tokens[-1] += text[len("".join(tokens)):]  # trailing whitespace, if any
    if len(tokens) < chunks:
        raise ValueError(f"{len(tokens)} tokens cannot make {chunks} chunks")
    bounds = [round(i * len(tokens) / chunks) for i in range(chunks + 1)]
    pieces = ["".join(tokens[a:b]) for a, b in itertools.pairwise(bounds)]
    assert "".join(pieces) == text
    return pieces


@dataclass
class Served:
    """One chat request: when it arrived and when its last chunk (and `[DONE]`) was written."""

    arrived: float
    finished: float | None = None
    cancelled: bool = False


class LeanModelServer:
    """Streams `ANSWER` to every chat request: the first chunk after `first_token_delay`, one
    more every `chunk_delay` seconds (0 and 0: the whole answer at once)."""

    def __init__(self, model: str, *, first_token_delay: float, chunk_delay: float,
                 api_key: str | None = None, max_model_len: int = 8192) -> None:
        self.model, self.api_key, self.max_model_len = model, api_key, max_model_len
        self.first_token_delay, self.chunk_delay = first_token_delay, chunk_delay
        self.served: dict[tuple[int, int], list[Served]] = {}  # (user, turn) -> requests
        self.paths: Counter[str] = Counter()
        self.running = 0
        meta = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                "model": model}
        self._meta = meta

        def event(body: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps({**meta, **body}, separators=(",", ":")).encode() + (
                b"\n\n")

        def content(piece: str) -> dict[str, Any]:
            return {"choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                 "finish_reason": None}]}

        self._event, self._content = event, content
        self._role = event({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                               "content": ""},
                                         "logprobs": None, "finish_reason": None}]})
        self._pieces = split_answer()
        self._chunks = [event(content(p)) for p in self._pieces]
        self._tag_index = next(i for i, p in enumerate(self._pieces) if _TAG_SLOT in p)
        self._finish = event({"choices": [{"index": 0, "delta": {}, "logprobs": None,
                                           "finish_reason": "stop"}]})
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request) -> bool:
        self.paths[request.path] += 1
        return self.api_key is None or request.headers.get("Authorization") == (
            f"Bearer {self.api_key}")

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response({"error": "Unauthorized"}, status=401)

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "bench",
                 "max_model_len": self.max_model_len}
        return web.json_response({"object": "list", "data": [entry]})

    async def _health(self, request: web.Request) -> web.Response:
        self.paths[request.path] += 1
        return web.Response()

    async def _metrics(self, request: web.Request) -> web.Response:
        self.paths[request.path] += 1
        labels = f'{{engine="0",model_name="{self.model}"}}'
        text = (f"vllm:num_requests_running{labels} {self.running}\n"
                f"vllm:num_requests_waiting{labels} 0\n")
        return web.Response(text=text, content_type="text/plain")

    async def _tokenize(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        raw = await request.read()
        count = max(1, len(raw) // 4)  # a rough count; only its order of magnitude matters
        return web.json_response({"count": count, "max_model_len": self.max_model_len,
                                  "tokens": [], "token_strs": None})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        if not self._authorized(request):
            return self._unauthorized()
        body = json.loads(await request.read())
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        found = QUESTION.search(str(users[-1].get("content", ""))) if users else None
        key = (int(found[2]), int(found[1])) if found else (0, 0)  # (user, turn)
        record = Served(arrived)
        self.served.setdefault(key, []).append(record)
        tagged = self._event(self._content(
            self._pieces[self._tag_index].replace(_TAG_SLOT, f"(user {key[0]}, turn {key[1]})")))
        chunks = [*self._chunks]
        chunks[self._tag_index] = tagged
        prompt = len(json.dumps(body.get("messages"))) // 4
        usage = {"prompt_tokens": prompt, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": prompt + COMPLETION_TOKENS}
        tail = self._finish + self._event({"choices": [], "usage": usage}) + b"data: [DONE]\n\n"
        if not body.get("stream"):
            return web.json_response({**self._meta, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(self._pieces)},
                 "finish_reason": "stop"}], "usage": usage})
        self.running += 1
        try:
            return await self._stream(request, chunks, tail, record)
        finally:
            self.running -= 1

    async def _stream(self, request: web.Request, chunks: list[bytes], tail: bytes,
                      record: Served) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            await response.write(self._role)
            start = time.monotonic() + self.first_token_delay
            sent, total = 0, len(chunks)
            while sent < total:
                wait = start + sent * self.chunk_delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elapsed = time.monotonic() - start
                due = total if self.chunk_delay <= 0 else int(elapsed / self.chunk_delay) + 1
                upto = min(total, max(due, sent + 1))
                payload = b"".join(chunks[sent:upto])
                sent = upto
                await response.write(payload + tail if sent == total else payload)
            record.finished = time.monotonic()
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            record.cancelled = True
            raise
        return response
