"""`/addmodel … hf=… draft=…`: the pool agent launches a (fake) vLLM with the draft model, the
bot reports progress in one message, registers the model, and `/rmmodel` stops the server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from bot import pool_launch
from inference.pool.agent import PoolAgent
from inference.pool.protocol import PoolAuth, PoolKeys
from tests.conftest import REDIS_URL
from tests.e2e.helpers import labels, rows
from tests.harness import running_bot
from tests.pool_support import AUTH, POOL_SECRET, agent, records

ADMIN = 777


async def test_admin_launches_a_speculative_model_on_the_pool_and_retires_it(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm, db
):
    async with (
        agent(redis_prefix, tmp_path, vllm, gpus=(0, 1)) as pool,
        running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                    ADMIN_IDS=str(ADMIN), POOL_SECRET=POOL_SECRET),
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


async def wait_text(telegram, predicate, wait: float = 30):
    return await telegram.wait_for(
        lambda: (m := telegram.bot_messages(ADMIN)) and predicate(m[-1].text) and m[-1],
        timeout=wait)


@contextlib.asynccontextmanager
async def launch_under_way(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           vllm) -> AsyncIterator[tuple[Redis, PoolKeys, dict, PoolAgent]]:
    """`/addmodel q hf=… draft=…` with a slow-starting server: yields while it is launching,
    with the Redis connection, the pool keys, the agent's first (genuine) event and the
    agent."""
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "1.5")
    redis = Redis.from_url(REDIS_URL)
    keys = PoolKeys(redis_prefix)
    async with (
        agent(redis_prefix, tmp_path, vllm, gpus=(0,)) as pool,
        running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                    ADMIN_IDS=str(ADMIN), POOL_SECRET=POOL_SECRET),
    ):
        telegram.user_sends("/addmodel q hf=org/q draft=org/d", chat_id=ADMIN)
        await wait_text(telegram, lambda t: t.startswith("⏳ q: launching"))
        [(_, [(_, fields)])] = await redis.xread({keys.events_log: "0-0"}, count=1)
        try:
            yield redis, keys, AUTH.open("event", fields), pool
        finally:
            await redis.aclose()


async def test_forged_ready_events_are_ignored_and_the_agents_own_is_stored(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm, db, caplog
):
    """An attacker who can write to Redis races the agent with "ready" events pointing at
    their own server; the bot stores only the claiming agent's address."""
    async with launch_under_way(monkeypatch, tmp_path, telegram, models, database_url,
                                redis_prefix, vllm) as (redis, keys, event, _):
        forged = {**event, "state": "ready", "base_url": "http://evil.example:9/v1"}
        await redis.xadd(keys.events_log, {"data": json.dumps(forged)})  # unsigned
        await redis.xadd(keys.events_log,
                         PoolAuth("attacker-guess-0123456789").seal("event", forged))
        # Genuinely signed, but from an agent that did not claim this launch.
        await redis.xadd(keys.events_log, AUTH.seal("event", {**forged, "host": "gpu9"}))
        ready = await wait_text(telegram, lambda t: t.startswith(("✅", "⚠️")))
        assert ready.message_id == telegram.bot_messages(ADMIN)[0].message_id
        assert ready.text.startswith("✅ q: ready on gpu1 (http://127.0.0.1:"), ready.text
        [override] = await rows(db, "SELECT spec FROM model_override")
        assert override["spec"]["base_url"].startswith("http://127.0.0.1:")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "(unsigned)" in logged and "(bad signature)" in logged
    assert "from gpu9: gpu1 claimed it" in logged


async def test_a_ready_address_off_the_agents_host_is_refused(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm, db
):
    """Even a signed event may not move the model off the claiming agent's registered host
    (a confused or compromised agent)."""
    async with launch_under_way(monkeypatch, tmp_path, telegram, models, database_url,
                                redis_prefix, vllm) as (redis, keys, event, pool):
        await redis.xadd(keys.events_log, AUTH.seal("event", {
            **event, "state": "ready", "base_url": "http://evil.example:8000/v1"}))
        refused = await wait_text(telegram, lambda t: t.startswith(("✅", "⚠️")))
        assert refused.text == ("⚠️ q: gpu1 reported ready, but http://evil.example:8000/v1 is "
                                "not on gpu1's registered address 127.0.0.1; not added, and its "
                                "server is being stopped")
        assert await rows(db, "SELECT * FROM model_override") == []
        await telegram.wait_for(lambda: pool.replicas() == [] and pool.gpus.free == [0])


async def test_bad_launch_arguments_and_a_missing_pool_get_clear_answers_at_once(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm, db
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN), POOL_SECRET=POOL_SECRET):
        async def say(text: str) -> str:
            before = len(telegram.bot_messages(ADMIN))
            telegram.user_sends(text, chat_id=ADMIN)
            return (await telegram.wait_for_bot_messages(ADMIN, before + 1, timeout=10))[-1].text

        for text, answer in [
            ("/addmodel x hf=../../etc draft=../../root gpus=999",
             "⚠️ hf= must be a Hugging Face repo id (org/name) or an absolute path under the "
             "agent's models directory, got '../../etc'"),
            ("/addmodel x hf=--flag draft=b", "⚠️ hf= must be a Hugging Face repo id"),
            ("/addmodel x hf=org/x draft=org/d gpus=999",
             "⚠️ gpus= must be an integer between 1 and 64, got 999"),
            ("/addmodel x hf=org/x draft=org/d k=-1", "⚠️ k= must be a whole number, got '-1'"),
            ("/addmodel x hf=org/x draft=org/d extra_args=--trust-remote-code",
             "⚠️ unknown option extra_args="),
            ("/addmodel x hf=org/x draft=org/d",
             "⚠️ no pool agent is running (none reported in the last 30 s): start `chatmux "
             "pool-agent` on a GPU host with this bot's REDIS_URL and POOL_SECRET; nothing "
             "launched"),
        ]:
            reply = await say(text)
            assert reply.startswith(answer), reply
        async with agent(redis_prefix, tmp_path, vllm, gpus=(0, 1)):
            reply = await say("/addmodel x hf=org/x draft=org/d gpus=3")
            assert reply == ("⚠️ gpus=3: no pool agent gives one server that many (the most "
                             "is 2, on gpu1); nothing launched")
        assert await rows(db, "SELECT * FROM audit_log") == []


async def test_a_launch_no_agent_claims_is_reported_as_such(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    """An agent that registered but stopped reading commands (hung, or another prefix)."""
    monkeypatch.setattr(pool_launch, "CLAIM_TIMEOUT", 1.0)
    redis = Redis.from_url(REDIS_URL)
    beat = {"host": "gpu1", "gpus": [0], "free": [0], "replicas": 0,
            "advertise_host": "127.0.0.1", "ts": time.time()}
    await redis.hset(PoolKeys(redis_prefix).agents, "gpu1", AUTH.seal_json("agent", beat))
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN), POOL_SECRET=POOL_SECRET):
        telegram.user_sends("/addmodel x hf=org/x draft=org/d", chat_id=ADMIN)
        reported = await wait_text(telegram, lambda t: t.startswith("⚠️"), wait=10)
        assert reported.text == ("⚠️ x: no pool agent took the launch within 1 s (running: "
                                 "gpu1); nothing added")
        assert await rows(db, "SELECT * FROM model_override") == []
    await redis.aclose()
