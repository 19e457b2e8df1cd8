"""Webhook mode: an aiohttp server taking Telegram's update deliveries (aiogram's handler).

Several replicas may run behind one URL: each checks the secret token, answers Telegram at
once and handles the update in the background; duplicates are dropped by `DedupMiddleware`
(update ids claimed in Redis), and everything per conversation is shared through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.settings import ConfigError

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CANCEL_GRACE = 2.0  # seconds cancelled updates get to end


class CheckedRequestHandler(SimpleRequestHandler):
    """aiogram's handler (401 on a wrong secret token, updates handled in the background),
    logging refused requests and letting background updates finish on shutdown."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str,
                 grace: float, **data: Any) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True,
                         secret_token=secret_token, **data)
        self.grace = grace

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get(SECRET_HEADER, "")
        if not self.verify_secret(token, self.bot):  # aiogram answers 401 and stops there
            # The header's value is never logged.
            log.warning("refused a webhook request from %s: %s secret token (401)",
                        request.remote or "?", "wrong" if token else "no")
        response = await super().handle(request)
        # No keep-alive: a stopping replica must refuse the next delivery at once (aiohttp
        # leaves a request on an idle kept-alive connection hanging until shutdown ends),
        # so Telegram or the load balancer send it to another replica.
        response.force_close()
        return response

    async def close(self) -> None:
        """After the dispatcher's shutdown hooks: updates still being handled get what is
        left of the grace period, then are cancelled; then the bot session closes."""
        tasks = set(self._background_feed_update_tasks)
        if tasks:
            log.info("waiting for %d updates still being handled", len(tasks))
            _, unfinished = await asyncio.wait(tasks, timeout=self.grace)
            for task in unfinished:
                task.cancel()
            if unfinished:  # bounded too: a task that ignores its cancellation is left behind
                _, stuck = await asyncio.wait(unfinished, timeout=CANCEL_GRACE)
                if stuck:
                    log.warning("%d updates did not end when cancelled", len(stuck))
        await super().close()


def build_webhook_app(
    dp: Dispatcher,
    bot: Bot,
    secret: str,
    *,
    grace: float,
    path: str = WEBHOOK_PATH,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> tuple[web.Application, CheckedRequestHandler]:
    """The aiohttp application: `POST path` takes updates; the dispatcher's startup and
    shutdown hooks run with the application's. `extra_routes` adds other routes (probes,
    metrics) to the same server."""
    web_app = web.Application()
    # The dispatcher's hooks first: on shutdown they drain answers before the handler closes
    # the bot session (aiohttp runs on_shutdown callbacks in order).
    setup_application(web_app, dp, bot=bot)
    handler = CheckedRequestHandler(dp, bot, secret_token=secret, grace=grace)
    handler.register(web_app, path=path)
    # --- Integration point: extra routes on the webhook server (e.g. /metrics, /healthz,
    # /readyz from bot.observability.add_probe_routes) are added here.
    if extra_routes is not None:
        extra_routes(web_app)
    return web_app, handler


def webhook_path(url: str) -> str:
    """The path part of WEBHOOK_URL, which the server listens on (`/telegram` if none)."""
    return urlsplit(url).path or WEBHOOK_PATH


@contextlib.asynccontextmanager
async def serving(web_app: web.Application, host: str, port: int, *, shutdown_timeout: float,
                  ) -> AsyncIterator[web.AppRunner]:
    """Run `web_app` on host:port; on exit stop taking requests first (the site), then run
    the shutdown hooks (answers drain), then close connections."""
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()  # runs the startup hooks
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"WEBHOOK_LISTEN cannot listen on {host}:{port} "
                              f"({exc.strerror or exc}); choose another host:port") from None
        yield runner
    finally:
        await runner.cleanup()  # sites stop, then on_shutdown, then the server
