"""Odd input from users gets a short answer or is ignored, never "Something went wrong"."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, rows

PRIVATE = 6001
GROUP = -1006002
INTERNAL = "⚠️ Something went wrong on my side. Please try again."


async def toast(telegram, query_id: str) -> dict:
    await telegram.wait_for(lambda: query_id in telegram.callback_answers())
    return telegram.callback_answers()[query_id]


async def test_callback_ids_beyond_int64_are_stale_buttons(bot, telegram, db):
    telegram.user_sends("hi", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    huge = "9" * 20  # beyond a signed 64-bit id
    for data in (f"ans:up:{huge}", f"ans:regen:{huge}", f"ans:edit:{huge}",
                 f"ans:switch:{huge}", f"rgw:{huge}:beta", f"bv:{huge}:a",
                 f"bs:{huge}:better", "ans:up:-1", "ans:up:0"):
        query = telegram.user_presses(PRIVATE, answer.message_id, data, forged=True)
        answered = await toast(telegram, query)
        assert answered.get("text") == "This button is no longer valid.", data
        assert answered["show_alert"] is True
    assert [m.text for m in telegram.bot_messages(PRIVATE)][1:] == []
    # The real buttons still work.
    query = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "👍"))
    assert "Saved" in (await toast(telegram, query))["text"]
    assert len(await rows(db, "SELECT * FROM vote", 1)) == 1


async def test_a_mention_entity_splitting_a_surrogate_pair_is_not_a_crash(bot, telegram, models):
    # "😀" is two UTF-16 units; an entity starting at offset 1 begins inside it.
    text = "😀 @chatmux_test_bot what is 2+2?"
    telegram.user_sends(text, chat_id=GROUP, user_id=61, chat_type="supergroup",
                        entities=[{"type": "mention", "offset": 1, "length": 18}])
    telegram.user_sends("hey @chatmux_test_bot, are you there?", chat_id=GROUP, user_id=61,
                        chat_type="supergroup")
    answer = await telegram.wait_for(
        lambda: [m for m in telegram.bot_messages(GROUP) if "are you there" in (m.text or "")])
    assert answer[0].text == "[alpha-served] hey , are you there?"
    await asyncio.sleep(0.3)
    assert INTERNAL not in [m.text for m in telegram.bot_messages(GROUP)]
    # The malformed entity did not address the bot: only the second message reached a model.
    assert [r["messages"][-1]["content"] for r in models.chat_requests()] == [
        "hey , are you there?"
    ]
