"""Redis dying and coming back (a private redis-server, never the shared one): no answer is
lost, no "Something went wrong", and the chat is not left busy."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, labels
from tests.harness import running_bot
from tests.redis_server import PrivateRedis

PRIVATE = 5101
GROUP = -1005102
ADMIN = 5103
LONG = " ".join(f"w{i}" for i in range(40))
INTERNAL = "⚠️ Something went wrong on my side. Please try again."


async def test_redis_restarting_mid_answer_neither_errors_nor_locks_the_chat(
    monkeypatch, tmp_path, telegram, models, database_url
):
    redis = PrivateRedis(tmp_path / "redis")
    await redis.start()
    models.set_reply("alpha-served", lambda body: (
        LONG if body["messages"][-1]["content"] == "first" else "ok"))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.05  # the first answer streams for ~2 s
    try:
        async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, None,
                               REDIS_URL=redis.url, REDIS_PREFIX="outage",
                               ADMIN_IDS=str(ADMIN)):
            telegram.user_sends("first", chat_id=PRIVATE)
            await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3)
            await redis.kill()  # the chat lock is held and on disk
            [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
            assert answer.text == LONG and labels(answer)[0] == "👍"

            # While Redis is down the bot still answers, in private chats and in groups, and
            # takes votes.
            telegram.user_sends("second", chat_id=PRIVATE)
            second = (await telegram.wait_for_bot_messages(PRIVATE, 2))[-1]
            assert second.text == "ok"
            telegram.user_sends("@chatmux_test_bot hi", chat_id=GROUP, user_id=51,
                                chat_type="supergroup")
            in_group = await telegram.wait_for(
                lambda: (m := telegram.bot_messages(GROUP)) and labels(m[0]) and m[0])
            assert in_group.text == "ok"
            vote = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "👍"))
            await telegram.wait_for(lambda: vote in telegram.callback_answers())
            assert "Saved" in telegram.callback_answers()[vote]["text"]
            # An admin's change is stored and applied here; other processes catch up later.
            telegram.user_sends("/disable beta", chat_id=ADMIN)
            [done] = await telegram.wait_for_bot_messages(ADMIN, 1)
            assert done.text == "✅ Beta (beta) disabled"

            # Redis is back with the lock key the failed release left behind: it is freed, and
            # the next message is answered at once instead of waiting for it to expire.
            await redis.restart()
            telegram.user_sends("third", chat_id=PRIVATE)
            third = (await telegram.wait_for_bot_messages(PRIVATE, 3, timeout=8))[-1]
            assert third.text == "ok"
            await asyncio.sleep(0.2)
            shown = [m.text for chat in (PRIVATE, GROUP, ADMIN)
                     for m in telegram.bot_messages(chat)]
            assert INTERNAL not in shown and not any("still answering" in t for t in shown)
    finally:
        await redis.stop()
