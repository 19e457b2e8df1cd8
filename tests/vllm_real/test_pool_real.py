"""`/addmodel … hf=<target> draft=<draft>` through `chatmux run`, a pool agent and real vLLM
(its CPU build, started as a module): launch with the draft, chat, acceptance in /models equal
to the server's own counters, a killed server restarted, /rmmodel leaves no process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp

from inference.pool.argv import vllm_command
from inference.pool.gpus import GpuPool
from inference.vllm_metrics import ACCEPTED, DRAFT_TOKENS, DRAFTS, iter_samples
from tests.e2e.helpers import button
from tests.harness import running_bot
from tests.pool_support import POOL_SECRET, agent
from tests.vllm_real.servers import CPU_ENV, group_alive

ADMIN = 777


def counters(text: str) -> dict[str, float]:
    found = {name: 0.0 for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED)}
    for name, value in iter_samples(text):
        if name in found:
            found[name] += value
    return found


async def test_a_pool_launched_real_vllm_answers_reports_acceptance_and_restarts(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, vllm_python, tiny_pair
):
    target, draft = tiny_pair
    for key, value in CPU_ENV.items():
        monkeypatch.setenv(key, value)
    command = vllm_command("vllm", vllm_python)

    async def say(text: str, wait: float = 60) -> str:
        before = len(telegram.bot_messages(ADMIN))
        telegram.user_sends(text, chat_id=ADMIN)
        return (await telegram.wait_for_bot_messages(ADMIN, before + 1, timeout=wait))[-1].text

    async with (
        agent(redis_prefix, tmp_path, command, gpus=GpuPool.cpu(1), ready_timeout=400,
              models_dir=target.parent) as pool,
        running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                    ADMIN_IDS=str(ADMIN), POOL_SECRET=POOL_SECRET),
    ):
        telegram.user_sends(f"/addmodel tiny hf={target} draft={draft} k=3 context=512 "
                            'dtype=float32 title="Tiny"', chat_id=ADMIN)
        progress = await telegram.wait_for(
            lambda: (m := telegram.bot_messages(ADMIN)) and m[0].text.startswith(("✅", "⚠️"))
            and m[0], timeout=450)
        assert progress.text.startswith("✅ tiny: ready on gpu1 (http://127.0.0.1:"), progress.text
        [replica] = pool.replicas()
        proc = Path(f"/proc/{replica['pid']}")
        argv = " ".join((proc / "cmdline").read_text().split("\0"))
        assert "-m vllm.entrypoints.openai.api_server --model " + str(target) in argv
        assert '"method": "draft_model"' in argv and '"num_speculative_tokens": 3' in argv
        assert "CUDA_VISIBLE_DEVICES" not in (proc / "environ").read_text()

        telegram.user_sends("/model", chat_id=ADMIN)
        menu = (await telegram.wait_for_bot_messages(ADMIN, 2))[-1]
        query = telegram.user_presses(ADMIN, menu.message_id, button(menu, "Tiny"))
        await telegram.wait_for(lambda: query in telegram.callback_answers())
        answer = await say("hello, tiny model")
        assert answer.strip(), "the real model's answer is shown"

        # /models: the acceptance the bot derived from its scrapes equals the server's own.
        metrics_url = replica["base_url"].removesuffix("/v1") + "/metrics"
        async with aiohttp.ClientSession() as session, session.get(metrics_url) as resp:
            served = counters(await resp.text())
        assert served[DRAFT_TOKENS] > 0
        rate = f"acceptance {served[ACCEPTED] / served[DRAFT_TOKENS] * 100:.0f}%"
        length = f"mean accepted length {1 + served[ACCEPTED] / served[DRAFTS]:.2f}"
        report = ""
        for _ in range(30):  # health checks scrape every 5 s
            report = await say("/models")
            if rate in report and length in report:
                break
            await asyncio.sleep(1)
        assert rate in report and length in report, (rate, length, report)

        # Killed from outside: the agent restarts it on the same port and it answers again.
        old_pid = replica["pid"]
        os.killpg(old_pid, signal.SIGKILL)
        await telegram.wait_for(
            lambda: (r := pool.replicas()) and r[0]["pid"] != old_pid
            and r[0]["state"] == "ready", timeout=450)
        assert pool.replicas()[0]["base_url"] == replica["base_url"]
        again = await say("still there?", wait=120)
        assert again.strip() and not again.startswith("⚠️"), again

        new_pid = pool.replicas()[0]["pid"]
        before = len(telegram.bot_messages(ADMIN))
        telegram.user_sends("/rmmodel tiny", chat_id=ADMIN)
        # The admin chatted with Tiny, so a "moved to the default" note comes too.
        await telegram.wait_for(lambda: any(
            m.text.startswith("✅ Tiny (tiny) removed; 1 user(s) moved")
            for m in telegram.bot_messages(ADMIN)[before:]), timeout=30)
        await telegram.wait_for(lambda: not pool.replicas() and not group_alive(new_pid),
                                timeout=60)
        assert not group_alive(old_pid)
        assert not re.search(r"\btiny\b", await say("/models"))
