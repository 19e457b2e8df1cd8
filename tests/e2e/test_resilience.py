"""One user's trouble is not everyone's: outages, slow models, no Redis."""

from __future__ import annotations

import asyncio

from tests.harness import running_bot


async def test_a_hung_model_does_not_hold_up_other_users(bot, telegram, models):
    models.hang_next(2.5)  # the first request hangs (below the 3 s first-token timeout)
    telegram.user_sends("slow one", chat_id=3001)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 1)
    telegram.user_sends("quick one", chat_id=3002)
    [quick] = await telegram.wait_for_bot_messages(3002, 1, timeout=2)
    assert quick.text == "[alpha-served] quick one"
    assert telegram.bot_messages(3001) == []  # still waiting for its model
    [slow] = await telegram.wait_for_bot_messages(3001, 1, timeout=5)
    assert slow.text == "[alpha-served] slow one"


async def test_a_model_that_is_down_gets_a_clear_message_and_others_still_work(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    down = {"beta": {"base_url": "http://127.0.0.1:9/v1"}}  # nothing listens on port 9
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=down):
        telegram.user_sends("/model", chat_id=3003)
        [menu] = await telegram.wait_for_bot_messages(3003, 1)
        beta = menu.reply_markup["inline_keyboard"][1][0]["callback_data"]
        query = telegram.user_presses(3003, menu.message_id, beta)
        await telegram.wait_for(lambda: query in telegram.callback_answers())
        telegram.user_sends("anyone?", chat_id=3003)
        replies = await telegram.wait_for_bot_messages(3003, 2, timeout=6)
        assert replies[-1].text.startswith("⚠️ Beta is not reachable right now")
        telegram.user_sends("hi", chat_id=3004)
        [ok] = await telegram.wait_for_bot_messages(3004, 1)
        assert ok.text == "[alpha-served] hi"


async def test_runs_without_redis_on_in_process_state(
    monkeypatch, tmp_path, telegram, models, database_url
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, None):
        telegram.user_sends("no redis here", chat_id=3005)
        [answer] = await telegram.wait_for_bot_messages(3005, 1)
        assert answer.text == "[alpha-served] no redis here"


async def test_messages_sent_while_answering_wait_their_turn(bot, telegram, models):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(20)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.03
    telegram.user_sends("first", chat_id=3006)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 1)
    telegram.user_sends("second", chat_id=3006)
    await telegram.wait_for_bot_messages(3006, 2, timeout=10)
    await asyncio.sleep(0.1)
    # The second turn was asked after the first answer was complete, with it in the history.
    second = models.chat_requests()[1]["messages"]
    assert [m["content"] for m in second][1:] == [
        "first", " ".join(f"w{i}" for i in range(20)), "second"
    ]


async def test_fallback_chain_answers_with_a_note_when_a_model_is_down(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    from tests.e2e.helpers import labels

    overrides = {"alpha": {"base_url": "http://127.0.0.1:9/v1", "fallback": ["beta"]}}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides):
        telegram.user_sends("anyone home?", chat_id=3010)
        note, answer = await telegram.wait_for_bot_messages(3010, 2, timeout=8)
        assert note.text == "⚠️ Alpha is unavailable right now; Beta answers instead."
        assert answer.text == "[beta-served] anyone home?"
        assert labels(answer)[:2] == ["👍", "👎"]


async def test_a_cut_answer_keeps_its_text_and_offers_regenerate(bot, telegram, models):
    from tests.e2e.helpers import labels

    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(30)))
    models.fail_mid_stream_next(after_chunks=3, mode="disconnect")
    telegram.user_sends("go on", chat_id=3011)
    [answer] = await telegram.wait_for_bot_messages(3011, 1)
    assert answer.text.startswith("w0") and "cut off" in answer.text
    assert "🔄" in labels(answer)
