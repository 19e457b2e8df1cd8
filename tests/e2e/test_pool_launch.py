"""`/addmodel … hf=… draft=…`: the pool agent launches a (fake) vLLM with the draft model, the
bot reports progress in one message, registers the model, and `/rmmodel` stops the server."""

from __future__ import annotations

import aiohttp
import pytest

from tests.e2e.helpers import labels, rows
from tests.harness import running_bot
from tests.integration.test_pool_agent import agent, records, vllm  # noqa: F401  (fixture)

ADMIN = 777


async def test_admin_launches_a_speculative_model_on_the_pool_and_retires_it(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm, db  # noqa: F811
):
    async with (
        agent(redis_prefix, tmp_path, vllm, gpus=(0, 1)) as pool,
        running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                    ADMIN_IDS=str(ADMIN)),
    ):
        telegram.user_sends("/addmodel qwen hf=Qwen/Qwen3-8B draft=Qwen/Qwen3-0.6B k=5 "
                            'gpus=2 title="Qwen 8B"', chat_id=ADMIN)
        progress = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(ADMIN)) and m[0].text.startswith("✅") and m[0],
            timeout=30,
        )
        assert len(telegram.bot_messages(ADMIN)) == 1  # progress was edited into one message
        assert progress.edits >= 1
        assert progress.text.startswith("✅ qwen: ready on gpu1 (http://127.0.0.1:")
        [run] = records(tmp_path)
        assert run["cuda_visible_devices"] == "0,1"
        assert '"num_speculative_tokens": 5' in " ".join(run["argv"])
        actions = [r["action"] for r in await rows(db, "SELECT action FROM audit_log "
                                                       "ORDER BY id", 2)]
        assert actions == ["launch", "addmodel"]

        telegram.user_sends("/models", chat_id=ADMIN)
        report = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
        assert ("• qwen — Qwen 8B [enabled] vllm, serves qwen; speculative: draft_model, "
                "draft Qwen/Qwen3-0.6B, k=5") in report.text

        telegram.user_sends("/model", chat_id=ADMIN)
        menu = (await telegram.wait_for_bot_messages(ADMIN, 3))[-1]
        assert "Qwen 8B" in labels(menu)
        data = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                    if b["text"].endswith("Qwen 8B"))
        query = telegram.user_presses(ADMIN, menu.message_id, data)
        await telegram.wait_for(lambda: query in telegram.callback_answers())
        telegram.user_sends("hello pool", chat_id=ADMIN)
        answer = (await telegram.wait_for_bot_messages(ADMIN, 4, timeout=15))[-1]
        assert answer.text == "[qwen] hello pool"

        base_url = progress.text.split("(")[1].rstrip(")")
        telegram.user_sends("/rmmodel qwen", chat_id=ADMIN)
        await telegram.wait_for(lambda: not pool.replicas() and pool.gpus.free == [0, 1],
                                timeout=15)
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as session:
                await session.get(f"{base_url}/models")
