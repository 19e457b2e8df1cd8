"""The bot against real vLLM (the CPU build, the tiny target verified by its draft): stop
aborts the request inside vLLM, a too-long prompt gets the "too long" line (with vLLM's real
error body when the bot could not count), long Russian and Chinese conversations never
overflow the server, and a conversation survives the death of its replica."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from inference.routing import rendezvous_order
from inference.vllm_metrics import iter_samples
from tests.e2e.helpers import rows
from tests.harness import running_bot
from tests.vllm_real.conftest import started
from tests.vllm_real.servers import VllmServer

TOO_LONG_EN = "⚠️ This is too long for"
RUSSIAN = ("Расскажи, пожалуйста, подробно и с примерами, как устроена солнечная система, "
           "почему планеты вращаются вокруг Солнца и что такое гравитация. ")
CHINESE = "请详细地告诉我太阳系是如何运作的，为什么行星围绕太阳旋转，以及什么是引力。"


def tiny_entry(server: VllmServer, **extra) -> dict:
    return {"backend": "vllm", "base_url": server.base_url, "model": "tiny",
            "api_key_env": None, "system_prompt": None, "context_window": 8192,
            "params": {"temperature": 0, "max_tokens": 48},
            "timeouts": {"connect": 5, "first_token": 60, "total": 120}, **extra}


async def metric(server: VllmServer, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{server.root}/metrics") as r:
        return sum(value for sample, value in iter_samples(await r.text()) if sample == name)


async def ask(telegram, chat_id: int, text: str, wait: float = 60) -> str:
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    return (await telegram.wait_for_bot_messages(chat_id, before + 1, timeout=wait))[-1].text


@pytest.fixture
async def tiny_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                   spec_server):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": tiny_entry(spec_server)}) as settings:
        yield settings


async def test_stop_aborts_the_request_inside_vllm_and_keeps_the_partial_answer(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, spec_server, db
):
    entry = tiny_entry(spec_server, params={"temperature": 0, "max_tokens": 3800})
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, catalogue_overrides={"alpha": entry}):
        # A first turn warms both up (the first request of a process is slow to stream out).
        assert await ask(telegram, 7000, "hello")
        generated = await metric(spec_server, "vllm:generation_tokens_total")
        telegram.user_sends("write a very long story", chat_id=7001)
        frame = await telegram.wait_for(
            lambda: next((f for f in telegram.drafts(7001) if f.text.strip()), None),
            timeout=30)
        # Mid-answer: 3800 tokens take vLLM ~9 s on one core here, the first frame ~0.2 s
        # (its gauges lag: fewer tokens generated than asked for is the proof, below).
        telegram.user_stops_generation(7001, frame.draft_id)
        [answer] = await telegram.wait_for_bot_messages(7001, 1, timeout=30)
        assert answer.text.endswith("⏹ Stopped.") or "Stopped" in answer.text, answer.text
        for _ in range(50):  # promptly: within 5 s
            if not await metric(spec_server, "vllm:num_requests_running"):
                break
            await asyncio.sleep(0.1)
        assert await metric(spec_server, "vllm:num_requests_running") == 0
        await asyncio.sleep(1)  # nothing more is generated for it afterwards
        made = await metric(spec_server, "vllm:generation_tokens_total") - generated
        assert 0 < made < 3800, made
        [stored] = await rows(db, "SELECT status, content FROM message WHERE role='assistant' "
                                  "ORDER BY id DESC LIMIT 1")
        assert stored["status"] == "stopped" and 0 < len(stored["content"]) < 3800


async def test_the_server_counts_and_its_limit_holds_for_russian_and_chinese(
    tiny_bot, telegram, spec_server, db
):
    """Byte-level tokens: a Russian letter is 2 tokens, a Chinese character 3. Counting with
    the server's /tokenize against its max_model_len (4096, not the catalogue's 8192), long
    conversations never send the server a prompt over its limit."""
    for chat_id, text in ((7101, RUSSIAN), (7102, CHINESE)):
        for turn in range(6):
            answer = await ask(telegram, chat_id, f"{turn}: {text * 8}")
            assert not answer.startswith("⚠️"), answer
        [first, *rest] = await rows(
            db, "SELECT m.context_dropped FROM message m JOIN conversation c "
                "ON c.id = m.conversation_id JOIN chat ON chat.id = c.chat_id "
                "WHERE m.role = 'assistant' AND chat.telegram_id = :chat ORDER BY m.id",
            chat=chat_id)
        assert not first["context_dropped"] and rest[-1]["context_dropped"]
        shown = [m.text for m in telegram.bot_messages(chat_id)]
        assert sum("no longer fit" in t for t in shown) == 1
    # One message alone over the limit: the bot says so without sending it.
    answer = await ask(telegram, 7103, CHINESE * 40)
    assert answer.startswith(TOO_LONG_EN), answer
    assert (await ask(telegram, 7103, "and a short one")).strip()


async def test_a_too_long_prompt_gets_vllms_real_error_mapped_and_the_next_is_answered(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, spec_server
):
    """Served as a plain OpenAI-compatible endpoint the bot can only estimate (its estimate is
    low for this byte-level tokenizer), so vLLM itself refuses the prompt."""
    entry = tiny_entry(spec_server, backend="openai")
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, catalogue_overrides={"alpha": entry}):
        answer = await ask(telegram, 7201, "x" * 5000)
        assert answer.startswith(TOO_LONG_EN), answer
        telegram.user_sends("привет", chat_id=7202, language_code="ru")
        [russian] = await telegram.wait_for_bot_messages(7202, 1, timeout=60)
        assert not russian.text.startswith("⚠️")
        before = len(telegram.bot_messages(7202))
        telegram.user_sends("ж" * 3000, chat_id=7202, language_code="ru")
        [too_long] = (await telegram.wait_for_bot_messages(7202, before + 1))[before:]
        assert too_long.text.startswith("⚠️ Это слишком длинно для"), too_long.text
        assert not (await ask(telegram, 7201, "a short question")).startswith("⚠️")


@pytest.fixture
def second_replica(vllm_python: str, tiny_pair: tuple[Path, Path], vllm_logs: Path):
    target, draft = tiny_pair
    yield from started(VllmServer(vllm_python, target, "tiny", vllm_logs / "second.log",
                                  draft=draft, k=3, max_model_len=4096))


async def test_a_conversation_survives_its_replica_dying(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, spec_server,
    second_replica
):
    entry = tiny_entry(spec_server, replicas=[second_replica.base_url])
    urls = [spec_server.base_url, second_replica.base_url]
    chat_id = next(c for c in range(7300, 7400)
                   if rendezvous_order(urls, str(c))[0] == second_replica.base_url)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, catalogue_overrides={"alpha": entry}):
        for n in range(2):
            assert not (await ask(telegram, chat_id, f"turn {n}")).startswith("⚠️")
        assert await metric(second_replica, "vllm:prompt_tokens_total") > 0
        second_replica.kill()  # SIGKILL to its process group, mid-conversation
        for n in range(2, 5):
            answer = await ask(telegram, chat_id, f"turn {n}", wait=90)
            assert not answer.startswith("⚠️"), answer
        assert all("⚠️" not in m.text for m in telegram.bot_messages(chat_id))
