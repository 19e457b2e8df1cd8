"""Issue 15, observability: a real `chatmux run` with METRICS_LISTEN serves /metrics,
/healthz and /readyz, and a conversation moves the counters it should; log records made while
an update is handled carry its update id, chat id and model."""

from __future__ import annotations

import io
import json
import logging

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bot.observability.logs import JsonFormatter
from tests.e2e.helpers import button, toast
from tests.e2e.test_arena import start_battle
from tests.harness import running_bot
from tests.redis_server import PrivateRedis, free_port

CHAT = 7301
ARENA = 7302


async def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    """/metrics as {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def get(base: str, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}{path}") as response:
        return response.status, await response.text()


async def test_metrics_probes_and_log_context_of_a_running_bot(
    monkeypatch, tmp_path, telegram, models, database_url
):
    redis = PrivateRedis(tmp_path / "redis")
    await redis.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    models.set_reply("alpha-served", "A fine answer with several words in it")
    try:
        async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, None,
                               REDIS_URL=redis.url, REDIS_PREFIX="metrics",
                               METRICS_LISTEN=f"127.0.0.1:{port}"):
            assert await get(base, "/healthz") == (200, "ok")
            status, body = await get(base, "/readyz")
            assert status == 200
            assert json.loads(body) == {"ready": True,
                                        "checks": {"database": "ok", "redis": "ok"}}

            # An answer, a 👍 on it, a model error (HTTP 500), and a 429 from Telegram on
            # the final message (waited out, then delivered).
            telegram.user_sends("hello", chat_id=CHAT)
            [answer] = await telegram.wait_for_bot_messages(CHAT, 1)
            query = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
            await toast(telegram, query)
            models.fail_next(500)
            telegram.user_sends("fail please", chat_id=CHAT)
            await telegram.wait_for_bot_messages(CHAT, 2)
            telegram.fail_next("sendMessage", error_code=429,
                               description="Too Many Requests: retry after 1", retry_after=1)
            telegram.user_sends("once more", chat_id=CHAT)
            await telegram.wait_for_bot_messages(CHAT, 3, timeout=10)
            # An arena battle (one answer from each model), A wins, then by how much.
            _, _, b = await start_battle(telegram, ARENA)
            await toast(telegram, telegram.user_presses(ARENA, b.message_id, button(b, "🅰️")))
            revealed = await telegram.wait_for(
                lambda: (m := telegram.bot_messages(ARENA)[2]).text.startswith("Model B:") and m)
            await toast(telegram, telegram.user_presses(ARENA, b.message_id,
                                                         button(revealed, "Better")))

            samples = await scrape(base)
            assert value(samples, "chatmux_updates_total", type="message") == 5
            assert value(samples, "chatmux_updates_total", type="callback_query") == 3
            assert value(samples, "chatmux_answers_total", model="alpha",
                         outcome="complete") == 3
            assert value(samples, "chatmux_answers_total", model="beta",
                         outcome="complete") == 1
            assert value(samples, "chatmux_votes_total", kind="arena_a") == 1
            assert value(samples, "chatmux_votes_total", kind="arena_strength") == 1
            assert value(samples, "chatmux_answers_total", model="alpha", outcome="error") == 1
            assert value(samples, "chatmux_errors_total", kind="unavailable",
                         model="alpha") == 1
            assert value(samples, "chatmux_votes_total", kind="like") == 1
            assert value(samples, "chatmux_telegram_429_total", method="SendMessage") == 1
            for model, answers in (("alpha", 3), ("beta", 1)):
                assert value(samples, "chatmux_time_to_first_visible_seconds_count",
                             model=model) == answers
                assert value(samples, "chatmux_tokens_per_second_count",
                             model=model) == answers
                assert value(samples, "chatmux_active_streams", model=model) == 0
            assert value(samples, "chatmux_queue_depth") == 0

            # The answer's log line carries the update, the chat and the model.
            records = [json.loads(line) for line in lines.getvalue().splitlines()]
            failed = [r for r in records if r["message"].startswith("model alpha failed")]
            assert failed and failed[0]["chat_id"] == CHAT and failed[0]["model"] == "alpha"
            assert isinstance(failed[0]["update_id"], int)

            # Redis gone: not ready, and the body says what failed (and nothing else).
            await redis.kill()
            status, body = await get(base, "/readyz")
            assert status == 503
            assert json.loads(body) == {"ready": False,
                                        "checks": {"database": "ok", "redis": "unreachable"}}
            assert await get(base, "/healthz") == (200, "ok")
    finally:
        logging.getLogger().removeHandler(handler)
        if redis.process is not None:
            await redis.kill()
