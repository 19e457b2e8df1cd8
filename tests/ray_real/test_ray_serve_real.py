"""`/addmodel … hf=<target> draft=<draft>` with POOL=ray through `chatmux run`, a real Ray
head and Ray Serve LLM on vLLM's CPU build: the model becomes its own Serve app, answers
through Serve's proxy, /models shows the speculative-decoding acceptance read from Ray's
metrics, and /rmmodel removes the app."""

from __future__ import annotations

import asyncio

import aiohttp

from inference.vllm_metrics import parse_ray_metrics
from tests.e2e.helpers import button
from tests.harness import running_bot

ADMIN = 777


async def test_a_model_hot_added_on_ray_serve_answers_reports_acceptance_and_is_removed(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, ray_head, ray_models
):
    target, draft = ray_models

    async def say(text: str, wait: float = 120) -> str:
        before = len(telegram.bot_messages(ADMIN))
        telegram.user_sends(text, chat_id=ADMIN)
        return (await telegram.wait_for_bot_messages(ADMIN, before + 1, timeout=wait))[-1].text

    async def applications() -> dict:
        return (await asyncio.to_thread(ray_head.applications))["applications"]

    async with running_bot(
        monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
        ADMIN_IDS=str(ADMIN), POOL="ray", RAY_DASHBOARD_URL=ray_head.dashboard_url,
        RAY_SERVE_URL=ray_head.serve_url, RAY_METRICS_URL=ray_head.metrics_url,
        RAY_ACCELERATOR="cpu", POOL_MODELS_DIR=str(target.parent),
    ):
        telegram.user_sends(f"/addmodel tiny hf={target} draft={draft} k=3 context=2048 "
                            'dtype=float32 title="Tiny"', chat_id=ADMIN)
        progress = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(ADMIN)) and m[0].text.startswith(("✅", "⚠️"))
            and m[0], timeout=600)
        assert progress.text == f"✅ tiny: running on Ray Serve ({ray_head.serve_url}/tiny/v1)", \
            progress.text
        app = (await applications())["tiny"]
        assert app["status"] == "RUNNING"
        llm = app["deployed_app_config"]["args"]["llm_configs"][0]
        assert llm["engine_kwargs"]["speculative_config"] == {
            "method": "draft_model", "model": str(draft), "num_speculative_tokens": 3}

        telegram.user_sends("/model", chat_id=ADMIN)
        menu = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
        query = telegram.user_presses(ADMIN, menu.message_id, button(menu, "Tiny"))
        await telegram.wait_for(lambda: query in telegram.callback_answers())

        # Acceptance is a difference of two scrapes: should the bot's scrapes around the first
        # answer miss it, a second answer (in a new conversation: the context is small) counts.
        report = ""
        for question in ("hello, tiny model", "and once more"):
            if question != "hello, tiny model":
                await say("/new")
            answer = await say(question, wait=180)
            assert answer.strip() and not answer.startswith("⚠️"), answer
            for _ in range(15):  # the bot scrapes every 5 s
                report = await say("/models")
                if "acceptance" in report:
                    break
                await asyncio.sleep(1)
            if "acceptance" in report:
                break
        line = next(x for x in report.splitlines() if "/tiny/v1" in x)
        assert "acceptance" in line and "mean accepted length" in line, report
        async with aiohttp.ClientSession() as session, \
                session.get(ray_head.metrics_url) as resp:
            stats = parse_ray_metrics(await resp.text(), "tiny")
        assert stats.spec_draft_tokens and stats.spec_draft_tokens > 0, stats

        before = len(telegram.bot_messages(ADMIN))
        telegram.user_sends("/rmmodel tiny", chat_id=ADMIN)
        await telegram.wait_for(lambda: any(
            m.text.startswith("✅ Tiny (tiny) removed")
            for m in telegram.bot_messages(ADMIN)[before:]), timeout=60)
        assert not any(m.text.startswith("⚠️") for m in telegram.bot_messages(ADMIN)[before:])
        apps = await applications()
        assert "tiny" not in apps or apps["tiny"]["status"] == "DELETING", apps
        for _ in range(120):  # DELETING while the engine shuts down
            if "tiny" not in (apps := await applications()):
                break
            await asyncio.sleep(1)
        assert "tiny" not in apps, apps
