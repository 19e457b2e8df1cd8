"""`/addmodel … hf=… draft=…` with POOL=ray: the bot deploys the model as its own Ray Serve
app through a strict fake of Ray's dashboard, reports progress in one message, routes the model
to Serve's proxy, shows acceptance from Ray's metrics, and `/rmmodel` removes only its app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot import ray_launch
from inference.pool.argv import LaunchRequest
from inference.ray.app_config import Replicas, serve_app
from inference.ray.dashboard import RayDashboard
from tests.e2e.helpers import button, rows
from tests.fakes.openai_api import FakeModelServer
from tests.fakes.ray_dashboard import FakeRayDashboard
from tests.harness import running_bot

ADMIN = 777


@pytest.fixture
async def ray() -> AsyncIterator[FakeRayDashboard]:
    engine = FakeModelServer({"qwen": 4096}, num_speculative_tokens=3)
    await engine.start()
    dashboard = FakeRayDashboard(backend_root=engine.root, token="dash-token-0123")
    await dashboard.start()
    yield dashboard
    await dashboard.stop()
    await engine.stop()


def ray_env(dashboard: FakeRayDashboard, monkeypatch) -> dict[str, str]:
    monkeypatch.setattr(ray_launch, "POLL_INTERVAL", 0.05)
    monkeypatch.setenv("TEST_RAY_TOKEN", "dash-token-0123")
    return {"ADMIN_IDS": str(ADMIN), "POOL": "ray", "RAY_DASHBOARD_URL": dashboard.url,
            "RAY_SERVE_URL": dashboard.url, "RAY_METRICS_URL": f"{dashboard.url}/metrics",
            "RAY_DASHBOARD_TOKEN_ENV": "TEST_RAY_TOKEN"}


async def say(telegram, text: str, wait: float = 30) -> str:
    before = len(telegram.bot_messages(ADMIN))
    telegram.user_sends(text, chat_id=ADMIN)
    return (await telegram.wait_for_bot_messages(ADMIN, before + 1, timeout=wait))[-1].text


async def test_admin_deploys_a_model_on_ray_serve_chats_sees_acceptance_and_removes_it(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, ray, db
):
    other = serve_app(LaunchRequest(model_id="other", target="org/x"), Replicas(), "gpu")
    # An app someone else deployed: every change of ours must keep it.
    await _put_directly(ray, other)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           **ray_env(ray, monkeypatch)):
        ray.deploy_polls = 5
        telegram.user_sends("/addmodel qwen hf=Qwen/Qwen3-8B draft=Qwen/Qwen3-0.6B k=3 "
                            'gpus=2 replicas=1-2 title="Qwen 8B"', chat_id=ADMIN)
        done = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(ADMIN)) and m[0].text.startswith(("✅", "⚠️"))
            and m[0], timeout=30)
        assert len(telegram.bot_messages(ADMIN)) == 1 and done.edits >= 1
        assert done.text == f"✅ qwen: running on Ray Serve ({ray.url}/qwen/v1)"
        assert ray.live() == {"other", "qwen"}
        llm = ray.apps["qwen"].llm
        assert llm["engine_kwargs"]["tensor_parallel_size"] == 2
        assert llm["engine_kwargs"]["speculative_config"]["model"] == "Qwen/Qwen3-0.6B"
        [override] = await rows(db, "SELECT spec FROM model_override")
        assert override["spec"]["ray_serve"] == {"app": "qwen",
                                                 "metrics_url": f"{ray.url}/metrics"}

        telegram.user_sends("/model", chat_id=ADMIN)
        menu = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
        query = telegram.user_presses(ADMIN, menu.message_id, button(menu, "Qwen 8B"))
        await telegram.wait_for(lambda: query in telegram.callback_answers())
        assert await say(telegram, "hello ray") == "[qwen] hello ray"

        report = ""
        for _ in range(40):  # the health loop scrapes Ray's metrics every 5 s
            report = await say(telegram, "/models")
            if "acceptance" in report:
                break
            await asyncio.sleep(0.5)
        line = next(x for x in report.splitlines() if "/qwen/v1" in x)
        assert "ready" in line and "acceptance" in line and "mean accepted length" in line

        before = len(telegram.bot_messages(ADMIN))
        telegram.user_sends("/rmmodel qwen", chat_id=ADMIN)
        # The admin chatted with it, so a "moved to the default" note comes too.
        await telegram.wait_for(lambda: any(
            m.text.startswith("✅ Qwen 8B (qwen) removed; 1 user(s) moved")
            for m in telegram.bot_messages(ADMIN)[before:]), timeout=30)
        assert ray.live() == {"other"}
        assert ray.puts[-1]["applications"] == [other]


async def _put_directly(ray: FakeRayDashboard, config: dict) -> None:
    await RayDashboard(ray.url, ray.url, token=ray.token).put_app(config)


async def test_a_failed_deploy_reaches_the_admin_as_one_line_and_its_app_is_removed(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, ray, db
):
    ray.failing["org/missing"] = ("RuntimeError: Failed to create vLLM engine config: "
                                  "Repo id must be in the form 'namespace/repo_name'")
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           **ray_env(ray, monkeypatch)):
        telegram.user_sends("/addmodel bad hf=org/missing draft=org/d", chat_id=ADMIN)
        done = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(ADMIN)) and m[0].text.startswith(("✅", "⚠️"))
            and m[0], timeout=30)
        assert done.text == ("⚠️ bad: Ray Serve could not deploy it (DEPLOY_FAILED) — "
                             f"{ray.failing['org/missing']}; its app was removed")
        assert ray.live() == set()
        assert await rows(db, "SELECT spec FROM model_override") == []

        text = await say(telegram, "/addmodel x hf=org/t draft=/etc/passwd")
        assert text.startswith("⚠️ x: /etc/passwd is a local path; set POOL_MODELS_DIR"), text
        assert ray.live() == set()
