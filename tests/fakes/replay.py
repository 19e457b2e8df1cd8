"""A server that answers with recorded exchanges, byte for byte (status, content type, body).

For checking chatmux's own parsing against what real vLLM sent (tests/fakes/recordings/):
GET /health, /version, /v1/models and /metrics answer their recordings; a POST answers the
exchange named with `answer_next` (once), else the path's default.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web

from tests.vllm_real.recording import Exchange

DEFAULTS = {("GET", "/health"): "health", ("GET", "/version"): "version",
            ("GET", "/v1/models"): "models", ("GET", "/metrics"): "metrics",
            ("POST", "/v1/chat/completions"): "chat_stream", ("POST", "/tokenize"): "tokenize"}


class ReplayServer:
    def __init__(self, exchanges: dict[str, Exchange]) -> None:
        self.exchanges = exchanges
        self.next: dict[tuple[str, str], str] = {}
        self.served: list[str] = []  # names of the exchanges answered, in order
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def answer_next(self, name: str) -> None:
        """Answer the next request to that exchange's method and path with it."""
        exchange = self.exchanges[name]
        self.next[(exchange.method, exchange.path)] = name

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        key = (request.method, request.path)
        name = self.next.pop(key, None) or DEFAULTS.get(key)
        if name is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        self.served.append(name)
        exchange = self.exchanges[name]
        headers = {"Content-Type": exchange.content_type} if exchange.content_type else {}
        return web.Response(status=exchange.status, body=exchange.body.encode(),
                            headers=headers)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"
