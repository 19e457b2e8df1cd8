"""A pass-through HTTP proxy in front of a real server that keeps the chat requests it forwards:
what vLLM itself received, for tests to assert on (the fake server records its own)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from inference.pool.gpus import free_port

CHAT = "/v1/chat/completions"


class RecordingProxy:
    """`async with RecordingProxy(upstream_root) as proxy`: every request to `proxy.root` goes
    to the upstream unchanged (streamed answers streamed back as they come); the JSON bodies
    of chat completion requests are kept in `chat_requests`, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.chat_requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    async def __aenter__(self) -> RecordingProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        if request.path == CHAT and body:
            self.chat_requests.append(json.loads(body))
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "authorization", "accept")}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                "Content-Type": upstream.headers.get("Content-Type", "application/octet-stream")})
            await response.prepare(request)
            async for piece in upstream.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response
