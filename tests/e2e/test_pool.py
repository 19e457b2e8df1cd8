"""A vLLM model with two replicas behind the bot: routing survives a dead replica, /models
shows replicas and the speculative configuration."""

from __future__ import annotations

import pytest

from inference.routing import rendezvous_order
from tests.fakes.openai_api import FakeModelServer
from tests.harness import running_bot

ADMIN = 777


@pytest.fixture
async def second_replica():
    async with FakeModelServer({"beta-served": 4096}, api_key="sk-test-alpha") as server:
        yield server


async def test_vllm_replicas_route_around_a_dead_one_and_show_in_models(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, second_replica
):
    overrides = {"beta": {
        "backend": "vllm", "replicas": [second_replica.base_url],
        "speculative": {"method": "draft_model", "draft": "tiny-draft",
                        "num_speculative_tokens": 4},
    }}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides, ADMIN_IDS=str(ADMIN)):
        telegram.user_sends("/models", chat_id=ADMIN)
        [report] = await telegram.wait_for_bot_messages(ADMIN, 1)
        assert "• beta — Beta [enabled] vllm, serves beta-served; speculative: draft_model, " \
               "draft tiny-draft, k=4" in report.text
        assert report.text.count(": ready, in flight 0") == 2

        telegram.user_sends("/model", chat_id=ADMIN)
        menu = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
        data = menu.reply_markup["inline_keyboard"][1][0]["callback_data"]
        query = telegram.user_presses(ADMIN, menu.message_id, data)
        await telegram.wait_for(lambda: query in telegram.callback_answers())

        # The replica this chat sticks to dies; the other one answers from then on.
        urls = [models.base_url, second_replica.base_url]
        sticky = rendezvous_order(urls, str(ADMIN))[0]
        dead, alive = (models, second_replica) if sticky == models.base_url else (
            second_replica, models)
        await dead.stop()
        for n in range(3):
            telegram.user_sends(f"question {n}", chat_id=ADMIN)
            answer = (await telegram.wait_for_bot_messages(ADMIN, 3 + n, timeout=15))[-1]
            assert answer.text == f"[beta-served] question {n}"
        telegram.user_sends("/models", chat_id=ADMIN)
        report = (await telegram.wait_for_bot_messages(ADMIN, 6))[-1]
        assert f"{dead.base_url}: down" in report.text
        assert f"{alive.base_url}: ready" in report.text
