"""bot.observability: the metrics of one App, the probe routes, structured logs, and the
Grafana dashboard against what the bot exports."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiogram.types import ErrorEvent, Update
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bot.handlers.errors import on_error
from bot.observability.http import add_probe_routes, parse_listen, start_probe_server
from bot.observability.logs import (
    JsonFormatter,
    TextFormatter,
    current,
    enter_update,
    install_log_context,
    scoped,
    set_model,
)
from bot.observability.metrics import NO_MODEL, Metrics
from bot.settings import ConfigError, load_settings
from inference.redaction import RedactingFilter
from storage.db import create_engine
from tests.redis_server import free_port

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "chatmux-dashboard.json"


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    text = metrics.exposition().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_two_apps_keep_their_own_numbers():
    first, second = Metrics(), Metrics()
    first.update("message")
    first.update("message")
    second.update("callback_query")
    assert samples(first)[("chatmux_updates_total", frozenset({("type", "message")}))] == 2
    assert ("chatmux_updates_total", frozenset({("type", "message")})) not in samples(second)


def test_call_sites_move_their_metrics_with_bounded_labels():
    metrics = Metrics()
    metrics.answer("alpha", "complete")
    metrics.error("timeout", "alpha")
    metrics.error("handler")
    metrics.retry_after("SendMessage")
    metrics.vote("arena_tie")
    metrics.shown("alpha", 0.4)
    metrics.speed("alpha", 50, "ignored", 2.0)  # the server's count: 25 tokens/s
    metrics.speed("alpha", None, "", 1.0)  # nothing to count: no observation
    metrics.speed("alpha", 10, "x", 0.0)  # no time after the first token: none either
    with metrics.streaming("alpha"):
        during = samples(metrics)
    found = samples(metrics)
    assert during[("chatmux_active_streams", frozenset({("model", "alpha")}))] == 1
    assert found[("chatmux_active_streams", frozenset({("model", "alpha")}))] == 0
    assert found[("chatmux_answers_total",
                  frozenset({("model", "alpha"), ("outcome", "complete")}))] == 1
    errors = {labels: v for (name, labels), v in found.items() if name == "chatmux_errors_total"}
    assert errors == {frozenset({("kind", "timeout"), ("model", "alpha")}): 1,
                      frozenset({("kind", "handler"), ("model", NO_MODEL)}): 1}
    assert found[("chatmux_telegram_429_total", frozenset({("method", "SendMessage")}))] == 1
    assert found[("chatmux_votes_total", frozenset({("kind", "arena_tie")}))] == 1
    alpha = frozenset({("model", "alpha")})
    assert found[("chatmux_time_to_first_visible_seconds_count", alpha)] == 1
    assert found[("chatmux_tokens_per_second_count", alpha)] == 1
    assert found[("chatmux_tokens_per_second_sum", alpha)] == 25
    assert found[("chatmux_tokens_per_second_bucket", alpha | {("le", "30.0")})] == 1
    assert found[("chatmux_tokens_per_second_bucket", alpha | {("le", "20.0")})] == 0


def test_tokens_per_second_is_estimated_when_the_server_gave_no_usage():
    metrics = Metrics()
    metrics.speed("beta", None, "word " * 100, 1.0)
    found = samples(metrics)
    assert found[("chatmux_tokens_per_second_count", frozenset({("model", "beta")}))] == 1
    assert 100 <= found[("chatmux_tokens_per_second_sum", frozenset({("model", "beta")}))] <= 200


def test_sample_names_are_what_the_exposition_holds():
    metrics = Metrics()
    metrics.update("message")
    metrics.answer("a", "complete")
    metrics.shown("a", 1.0)
    metrics.speed("a", 5, "", 1.0)
    metrics.error("handler")
    metrics.retry_after("SendMessage")
    metrics.vote("like")
    with metrics.streaming("a"):
        exported = {name for name, _ in samples(metrics)}
    assert exported == metrics.sample_names()


# --- probes ------------------------------------------------------------------------------
class _Queue:
    def __init__(self, depth: int | None) -> None:
        self._depth = depth

    async def depth(self) -> int:
        if self._depth is None:
            raise ConnectionError("redis://:hunter2@redis:6379 unreachable")
        return self._depth


async def _probes(database_url: str, redis_url: str | None = None, depth: int | None = 3):
    app = SimpleNamespace(engine=create_engine(database_url),
                          redis=Redis.from_url(redis_url) if redis_url else None,
                          metrics=Metrics(), queue=_Queue(depth))
    web_app = web.Application()
    add_probe_routes(web_app, app)  # type: ignore[arg-type]
    client = TestClient(TestServer(web_app))
    await client.start_server()
    return app, client


async def _close(app, client) -> None:
    await client.close()
    await app.engine.dispose()
    if app.redis is not None:
        await app.redis.aclose()


async def test_probes_report_ready_and_scrape_reads_the_queue_depth(tmp_path):
    app, client = await _probes(f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}", depth=3)
    try:
        health = await client.get("/healthz")
        assert health.status == 200 and await health.text() == "ok"
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {"ready": True, "checks": {"database": "ok"}}
        scraped = await client.get("/metrics")
        assert scraped.status == 200
        assert "\nchatmux_queue_depth 3.0\n" in await scraped.text()
    finally:
        await _close(app, client)


async def test_readyz_names_what_is_unreachable_and_never_a_url(caplog):
    port = free_port()  # nothing listens there
    app, client = await _probes(f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{port}/x",
                                f"redis://:hunter2@127.0.0.1:{port}/0", depth=None)
    try:
        ready = await client.get("/readyz")
        assert ready.status == 503
        body = await ready.text()
        assert json.loads(body) == {"ready": False, "checks": {"database": "unreachable",
                                                               "redis": "unreachable"}}
        scraped = await (await client.get("/metrics")).text()
        assert "\nchatmux_queue_depth -1.0\n" in scraped  # unknown, not zero
        assert "hunter2" not in caplog.text
    finally:
        await _close(app, client)


def test_metrics_listen_is_validated_and_parsed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_settings(metrics_listen="0.0.0.0:9100").metrics_listen == "0.0.0.0:9100"
    assert load_settings(metrics_listen="").metrics_listen is None
    for bad in ("9100", "host:", "host:70000", "http://x:1"):
        with pytest.raises(ConfigError, match="METRICS_LISTEN"):
            load_settings(metrics_listen=bad)
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings(log_format="xml")
    assert parse_listen("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert parse_listen(":9100") == (None, 9100)
    assert parse_listen("[::1]:9100") == ("::1", 9100)


# --- logs --------------------------------------------------------------------------------
def _log_through(formatter: logging.Formatter, secrets: list[str], emit) -> str:
    install_log_context()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter(secrets))
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_json_lines_carry_the_update_context_and_no_secret():
    secret = "sk-very-secret-value-123"

    def emit(logger: logging.Logger) -> None:
        logger.warning("outside any update")
        enter_update(41, -100123)
        set_model("alpha")
        logger.warning("calling %s with %s", "http://u:pw@host/v1", secret)
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            logger.exception("boom")

    # In a context of its own, as an update's task: the variables set end with it.
    out = contextvars.copy_context().run(_log_through, JsonFormatter(), [secret], emit)
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    assert "update_id" not in records[0] and "model" not in records[0]
    assert records[1]["update_id"] == 41 and records[1]["chat_id"] == -100123
    assert records[1]["model"] == "alpha" and records[1]["level"] == "WARNING"
    assert records[1]["message"] == "calling http://***@host/v1 with ***"
    assert "RuntimeError: failed with ***" in records[2]["exc"]
    assert secret not in out and "pw@" not in out


def test_text_lines_append_the_context_that_is_set():
    def emit(logger: logging.Logger) -> None:
        logger.warning("plain")
        enter_update(7, None)
        logger.warning("with context")

    out = contextvars.copy_context().run(_log_through, TextFormatter(), [], emit)
    first, second = out.splitlines()
    assert first.endswith("WARNING tests.observability: plain")
    assert second.endswith("WARNING tests.observability: with context [update_id=7]")


# --- Grafana -----------------------------------------------------------------------------
def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "definition") and isinstance(v, str)]
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def test_the_dashboard_queries_only_what_the_bot_exports_and_all_of_it():
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    exported = Metrics().sample_names()
    queries = _exprs(dashboard)
    assert queries
    used = {name for q in queries for name in re.findall(r"\b[a-z_:][a-z0-9_:]*(?=[{\[( ,)])", q)
            if name.startswith("chatmux_")}
    assert used <= exported, used - exported
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in exported}
    assert {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used} == families
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])


def test_scoped_fields_are_put_back_after_the_block():
    def run() -> list[dict]:
        seen = []
        enter_update(5, 10)
        set_model("alpha")
        with scoped(update_id=None, chat_id=11, model=None):
            seen.append(current())
            set_model("beta")  # a turn inside picks its model
            seen.append(current())
        seen.append(current())
        return seen

    assert contextvars.copy_context().run(run) == [
        {"chat_id": 11}, {"chat_id": 11, "model": "beta"},
        {"update_id": 5, "chat_id": 10, "model": "alpha"}]


async def test_a_failed_handler_is_counted():
    metrics = Metrics()
    event = ErrorEvent(update=Update(update_id=1), exception=RuntimeError("bug"))
    assert await on_error(event, bot=None, metrics=metrics) is True  # type: ignore[arg-type]
    assert samples(metrics)[("chatmux_errors_total",
                             frozenset({("kind", "handler"), ("model", NO_MODEL)}))] == 1


async def test_a_busy_metrics_port_is_a_configuration_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"METRICS_LISTEN {listen}: cannot listen"):
            await start_probe_server(SimpleNamespace(), listen)  # type: ignore[arg-type]
