"""Fake Ollama and llama.cpp servers: the `GET /v1/models` (and native) answers the first-run
detection reads, shaped like the real ones (Ollama's openai/openai.go `ListCompletion` and
`/api/tags`; llama.cpp's tools/server `/v1/models`, which also carries an Ollama-style
`models` list, and `/props`). Anything else is a 404, as on the real servers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, Self

from aiohttp import web


class FakeLocalServer:
    """An Ollama (`kind="ollama"`) or llama.cpp (`kind="llama.cpp"`) server on a free port."""

    def __init__(self, kind: str, models: list[str], n_ctx: int = 4096) -> None:
        if kind not in ("ollama", "llama.cpp"):
            raise ValueError("kind must be 'ollama' or 'llama.cpp'")
        self.kind = kind
        self.models = list(models)
        self.n_ctx = n_ctx
        self.paths: list[str] = []  # every request's path, in order
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._created = int(time.time())

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/v1/models", self._v1_models)
        if self.kind == "ollama":
            app.router.add_get("/api/tags", self._tags)
        else:
            app.router.add_get("/props", self._props)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.paths.append(request.path)
        return await handler(request)

    async def _v1_models(self, request: web.Request) -> web.Response:
        if self.kind == "ollama":
            data = [{"id": name, "object": "model", "created": self._created,
                     "owned_by": "library"} for name in self.models]
            return web.json_response({"object": "list", "data": data})
        data = [{"id": name, "object": "model", "created": self._created,
                 "owned_by": "llamacpp",
                 "meta": {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": 131072,
                          "n_embd": 3072, "n_params": 3212749888, "size": 2019373056}}
                for name in self.models]
        native = [{"name": name, "model": name, "modified_at": "", "size": "", "digest": "",
                   "type": "model", "description": "", "tags": [""],
                   "capabilities": ["completion"], "parameters": "", "details": {}}
                  for name in self.models]
        return web.json_response({"models": native, "object": "list", "data": data})

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [
            {"name": name, "model": name, "modified_at": "2026-11-30T10:00:00Z",
             "size": 2019393189, "digest": "a80c4f17acd5" * 5 + "abcd",
             "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                         "quantization_level": "Q4_K_M"}} for name in self.models]})

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response({"default_generation_settings": {"n_ctx": self.n_ctx},
                                  "total_slots": 1, "model_path": self.models[0]})


@contextlib.asynccontextmanager
async def html_page(text: str = "<html>hello</html>") -> AsyncIterator[int]:
    """Something that is not a model server (a router's login page, say) on a free port,
    answering HTML to every path: yields the port."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
