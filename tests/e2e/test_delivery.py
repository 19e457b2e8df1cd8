"""Delivery under Telegram's rules: groups, rate limits, rejected formatting, stop button."""

from __future__ import annotations

import time

GROUP = -100555


async def test_group_answers_by_editing_one_message_without_drafts(bot, telegram, models):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(40)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    telegram.user_sends("people talking among themselves", chat_id=GROUP, user_id=7,
                        chat_type="group", chat_title="Team")
    telegram.user_sends("@chatmux_test_bot what do you think?", chat_id=GROUP, user_id=7,
                        chat_type="group", chat_title="Team")
    await telegram.wait_for(
        lambda: (m := telegram.bot_messages(GROUP)) and m[-1].text.endswith("w39"), timeout=10
    )
    [answer] = telegram.bot_messages(GROUP)
    assert answer.edits >= 1  # grew by edits, not by new messages
    assert telegram.drafts(GROUP) == []
    assert "typing" in telegram.chat_actions(GROUP)
    # Only the addressed message reached the model, without the mention.
    [request] = models.chat_requests()
    assert request["messages"][-1] == {"role": "user", "content": "what do you think?"}
    # Answer is a reply to the question in a busy group.
    sendmessages = telegram.calls("sendMessage")
    assert "reply_parameters" in sendmessages[0]


async def test_group_reply_to_the_bot_continues_the_conversation(bot, telegram, models):
    telegram.user_sends("@chatmux_test_bot hi", chat_id=GROUP, user_id=7, chat_type="group")
    [first] = await telegram.wait_for_bot_messages(GROUP, 1)
    await telegram.wait_for(lambda: telegram.bot_messages(GROUP)[0].text.startswith("[alpha"))
    telegram.user_sends("tell me more", chat_id=GROUP, user_id=8, chat_type="group",
                        reply_to_message_id=first.message_id)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    contents = [m["content"] for m in models.chat_requests()[-1]["messages"]]
    assert contents[1:] == ["hi", "[alpha-served] hi", "tell me more"]


async def test_group_edits_stay_within_the_per_minute_budget(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    from tests.harness import running_bot

    telegram.group_edit_limit_per_minute = 20  # the fake answers 429 beyond Telegram's budget
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(300)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.005
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           EDIT_INTERVAL_GROUP="0.01", GROUP_EDITS_PER_MINUTE="6"):
        for n in range(2):
            telegram.user_sends(f"@chatmux_test_bot q{n}", chat_id=GROUP, user_id=7,
                                chat_type="group")
            await telegram.wait_for(
                lambda n=n: len(m := telegram.bot_messages(GROUP)) == n + 1
                and m[-1].text.endswith("w299"), timeout=15
            )
    writes = [r for r in telegram.requests
              if r.method in ("sendMessage", "editMessageText")
              and r.params.get("chat_id") == GROUP]
    # Two answers: each a first send + a final edit beyond the shared 6/min frame budget.
    assert len(writes) <= 6 + 2
    assert all(r.ok for r in writes)


async def test_429_on_the_final_message_is_honoured(bot, telegram, models):
    telegram.fail_next("sendMessage", error_code=429,
                       description="Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    telegram.user_sends("hi", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1, timeout=10)
    assert answer.text == "[alpha-served] hi"
    assert time.monotonic() - started >= 1.0
    failed = [r for r in telegram.requests if r.method == "sendMessage" and not r.ok]
    assert len(failed) == 1


async def test_rejected_formatting_is_resent_as_plain_text(bot, telegram, models):
    models.set_reply("alpha-served", "Some **bold** words")
    telegram.fail_next("sendMessage", error_code=400,
                       description="Bad Request: can't parse entities: unsupported entity")
    telegram.user_sends("format please", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1)
    assert answer.text == "Some bold words" and answer.entities == []


async def test_429_on_drafts_drops_frames_but_not_the_answer(bot, telegram, models):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(30)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    telegram.fail_next("sendMessageDraft", error_code=429,
                       description="Too Many Requests: retry after 5", retry_after=5, times=2)
    telegram.user_sends("hi", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1)
    assert answer.text.endswith("w29")
    assert len([r for r in telegram.requests if r.method == "sendMessageDraft"]) <= 2


async def test_stop_button_ends_the_generation_and_keeps_the_text(bot, telegram, models, db):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(500)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    telegram.user_sends("talk forever", chat_id=1001)
    await telegram.wait_for(lambda: len(telegram.drafts(1001)) >= 3)
    telegram.user_stops_generation(1001, telegram.drafts(1001)[0].draft_id)
    [answer] = await telegram.wait_for_bot_messages(1001, 1, timeout=5)
    assert answer.text.startswith("w0 w1") and answer.text.endswith("⏹ Stopped.")
    assert "w499" not in answer.text
    await telegram.wait_for(lambda: models.cancelled_requests >= 1)
