"""`/metrics`, `/healthz` and `/readyz` on an aiohttp application: the webhook server's
(`add_probe_routes`), or in polling mode a small one of their own on METRICS_LISTEN
(`start_probe_server`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.settings import ConfigError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0  # seconds for each of /readyz's checks, and for reading the queue depth


async def _check(name: str, probe: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:  # any failure is "not ready"; its text may hold a URL: not shown
        log.warning("readiness: %s unreachable (%s)", name, type(exc).__name__)
        return False
    return True


async def _select_one(app: App) -> None:
    async with app.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


def add_probe_routes(web_app: web.Application, app: App) -> None:
    """GET /metrics (Prometheus text format), /healthz (200 while the event loop runs) and
    /readyz (200 when the database answers `SELECT 1` and Redis, if configured, a PING, each
    within CHECK_TIMEOUT; else 503 naming what failed). Call before the server starts."""

    async def metrics(_: web.Request) -> web.Response:
        try:
            depth = await asyncio.wait_for(app.queue.depth(), CHECK_TIMEOUT)
        except Exception as exc:
            log.info("queue depth unknown (%s)", type(exc).__name__)
            depth = -1
        app.metrics.queue_depth.set(depth)
        return web.Response(body=app.metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        probes = {"database": _select_one(app)}
        if app.redis is not None:
            probes["redis"] = app.redis.ping()
        results = await asyncio.gather(*(_check(n, p) for n, p in probes.items()))
        checks = {name: "ok" if ok else "unreachable"
                  for name, ok in zip(probes, results, strict=True)}
        ready = all(results)
        return web.json_response({"ready": ready, "checks": checks},
                                 status=200 if ready else 503)

    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)


def parse_listen(listen: str) -> tuple[str | None, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) → (host, port)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return host or None, int(port)


async def start_probe_server(app: App, listen: str) -> web.AppRunner:
    """Serve the probe routes on `listen` (polling mode); stop with `stop_probe_server`."""
    web_app = web.Application()
    add_probe_routes(web_app, app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    host, port = parse_listen(listen)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"METRICS_LISTEN {listen}: cannot listen there "
                          f"({exc.strerror or exc})") from None
    except BaseException:
        await runner.cleanup()
        raise
    log.info("metrics and probes on %s", listen)
    return runner


async def stop_probe_server(runner: web.AppRunner) -> None:
    await runner.cleanup()
