"""Delivery under Telegram's rules: groups, rate limits, rejected formatting, stop button."""

from __future__ import annotations

import time

import pytest

from bot.streaming.delivery import NETWORK_RETRIES

GROUP = -100555


async def test_group_answers_by_editing_one_message_without_drafts(bot, telegram, models):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(40)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    models.first_token_delay = 0.5  # slow to start: "typing…" until the first text
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


# --- the final delivery: patience, fallbacks, and answers Telegram would not take ---------------

async def test_repeated_429s_on_the_final_message_are_waited_out(bot, telegram, models, db):
    from tests.e2e.helpers import labels, rows

    telegram.fail_next("sendMessage", error_code=429,
                       description="Too Many Requests: retry after 1", retry_after=1, times=3)
    telegram.user_sends("hi", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1, timeout=15)
    assert answer.text == "[alpha-served] hi" and labels(answer)[0] == "👍"
    assert not any("Something went wrong" in (r.params.get("text") or "")
                   for r in telegram.requests)
    [row] = await rows(db, "SELECT id, status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "complete"
    [delivery] = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id", 1, id=row["id"])
    assert delivery["tg_message_id"] == answer.message_id


async def test_a_429_longer_than_the_bot_can_wait_leaves_the_answer_undelivered(
    bot, telegram, models, db
):
    from tests.e2e.helpers import rows

    telegram.fail_next("sendMessage", error_code=429,
                       description="Too Many Requests: retry after 3600", retry_after=3600)
    telegram.user_sends("are you there?", chat_id=1001)
    [row] = await rows(db, "SELECT id, status FROM message WHERE role = 'assistant' "
                           "AND status = 'undelivered'", 1)
    assert row["status"] == "undelivered"  # stored (it is data), marked as never shown
    assert telegram.bot_messages(1001) == []  # the chat is flood-limited: nothing got through
    assert not any("Something went wrong" in (r.params.get("text") or "")
                   for r in telegram.requests)

    telegram.advance(3600)  # the flood wait is over
    telegram.user_sends("still there?", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1)
    assert answer.text == "[alpha-served] still there?"
    # The answer the user never saw is not in the context.
    assert [m["content"] for m in models.chat_requests()[-1]["messages"]] == [
        "You are Alpha.", "still there?"]


async def test_a_dropped_connection_on_the_final_message_is_retried(bot, telegram, models, db):
    telegram.drop_next("sendMessage")
    telegram.user_sends("hi", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1)
    assert answer.text == "[alpha-served] hi"
    await telegram.wait_for(lambda: len(telegram.calls("sendMessage")) == 1)
    assert [r.error for r in telegram.requests if r.method == "sendMessage"] == [
        "connection dropped", None]


async def test_dropped_draft_frames_do_not_lose_the_answer(bot, telegram, models, db):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(20)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    telegram.drop_next("sendMessageDraft", times=3)
    telegram.user_sends("hi", chat_id=1001)
    [answer] = await telegram.wait_for_bot_messages(1001, 1)
    assert answer.text.endswith("w19")


async def test_an_answer_that_cannot_be_delivered_whole_is_marked_and_offers_retry(
    bot, telegram, models, db
):
    from tests.e2e.helpers import button, labels, rows

    models.set_reply("alpha-served", "\n\n".join(f"paragraph {i} " + "x" * 3000
                                                 for i in range(2)))
    # The second part never gets through: every retry of it loses its connection.
    telegram.drop_next("sendMessage", times=NETWORK_RETRIES + 1,
                       when=lambda p: p.get("text", "").startswith("paragraph 1"))
    telegram.user_sends("a long one", chat_id=1001)
    first, notice = await telegram.wait_for_bot_messages(1001, 2, timeout=15)
    assert first.text.startswith("paragraph 0") and labels(first) == []
    assert notice.text.startswith("⚠️ I couldn't deliver the whole answer")
    assert labels(notice) == ["🔄"]
    [row] = await rows(db, "SELECT id, status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "undelivered"
    deliveries = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id ORDER BY part", 2, id=row["id"])
    assert [d["tg_message_id"] for d in deliveries] == [first.message_id, notice.message_id]

    models.set_reply("alpha-served", "short this time")
    telegram.user_presses(1001, notice.message_id, button(notice, "🔄"))
    retried = (await telegram.wait_for_bot_messages(1001, 3))[-1]
    assert retried.text == "short this time" and labels(retried)[0] == "👍"
    telegram.user_sends("thanks", chat_id=1001)
    await telegram.wait_for_bot_messages(1001, 4)
    assert [m["content"] for m in models.chat_requests()[-1]["messages"]] == [
        "You are Alpha.", "a long one", "short this time", "thanks"]


async def test_a_deleted_group_message_being_edited_is_replaced_by_a_new_one(
    bot, telegram, models, db
):
    from tests.e2e.helpers import button, labels, rows

    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(40)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.05
    telegram.user_sends("@chatmux_test_bot talk", chat_id=GROUP, user_id=7, chat_type="group")
    [streaming] = await telegram.wait_for_bot_messages(GROUP, 1)
    telegram.user_deletes(GROUP, streaming.message_id)  # an admin deletes the bot's message
    answer = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(GROUP)) and m[-1].text.endswith("w39")
        and labels(m[-1]) and m[-1])
    assert answer.message_id != streaming.message_id
    assert [m.message_id for m in telegram.bot_messages(GROUP)] == [answer.message_id]
    [row] = await rows(db, "SELECT id, status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "complete"
    deliveries = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id", 1, id=row["id"])
    assert [d["tg_message_id"] for d in deliveries] == [answer.message_id]
    vote = telegram.user_presses(GROUP, answer.message_id, button(answer, "👍"), user_id=7)
    await telegram.wait_for(lambda: vote in telegram.callback_answers())
    assert "Saved" in telegram.callback_answers()[vote]["text"]


async def test_an_arena_answer_b_that_cannot_be_delivered_is_no_battle(
    bot, telegram, models, db
):
    from tests.e2e.helpers import labels, rows

    telegram.user_sends("/arena", chat_id=1001)
    await telegram.wait_for_bot_messages(1001, 1)
    telegram.drop_next("sendMessage", times=NETWORK_RETRIES + 1,
                       when=lambda p: p.get("text", "").startswith("Model B"))
    telegram.user_sends("fight", chat_id=1001)
    a, notice = (await telegram.wait_for_bot_messages(1001, 3, timeout=15))[1:]
    assert a.text.startswith("Model A")
    assert notice.text.startswith("⚠️ I couldn't deliver the whole answer")
    await telegram.wait_for(lambda: labels(telegram.bot_messages(1001)[1])[:1] == ["👍"])
    assert await rows(db, "SELECT * FROM battle") == []
    statuses = await rows(db, "SELECT status FROM message WHERE role = 'assistant' ORDER BY id")
    assert [s["status"] for s in statuses] == ["complete", "undelivered"]


# --- floods: a very long answer is a few messages and a file -------------------------------

@pytest.fixture
async def roomy(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
    """The bot with models whose context and answers may be very long."""
    from tests.harness import running_bot

    roomy = {"context_window": 200_000, "params": {"max_tokens": 100_000}}
    for served in ("alpha-served", "beta-served"):
        models.models[served] = 200_000
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": roomy, "beta": roomy}) as settings:
        yield settings


def huge_answer(paragraphs: int = 710) -> str:
    """About 284,000 characters of Markdown in numbered paragraphs."""
    return "\n\n".join(f"**Paragraph {i}.** " + "lorem ipsum dolor sit amet " * 14
                       for i in range(paragraphs))


def check_nothing_lost(messages, markdown: str, paragraphs: int) -> None:
    """Every paragraph is in the messages shown or in the file, in order, once."""
    shown = "\n".join(m.text for m in messages if m.text)
    [doc] = [m for m in messages if m.document is not None]
    assert doc.document["file_name"] == "answer.md"
    rest = doc.document["content"].decode()
    numbers = [int(p.split(".")[0]) for p in
               (shown.replace("Paragraph ", "\0").split("\0")[1:]
                + rest.replace("**Paragraph ", "\0").split("\0")[1:])]
    assert numbers == list(range(paragraphs))
    assert rest.strip() and markdown.rstrip().endswith(rest.strip())  # the rest, as Markdown


async def test_a_huge_answer_is_a_few_messages_and_the_rest_as_a_file(
    roomy, telegram, models, db
):
    from tests.e2e.helpers import button, labels, rows

    markdown = huge_answer()
    assert len(markdown) > 280_000
    models.set_reply("alpha-served", markdown)
    models.tokens_per_chunk = 3000
    telegram.user_sends("tell me everything", chat_id=1001)
    last = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(1001)) and labels(m[-1]) and m[-1], timeout=30)
    messages = telegram.bot_messages(1001)
    assert len(messages) <= 4 and last.document is not None
    assert last.caption.startswith("📄 The answer is too long for a chat")
    assert labels(last)[:2] == ["👍", "👎"]  # the buttons are under the last thing delivered
    assert all(labels(m) == [] for m in messages[:-1])
    check_nothing_lost(messages, markdown, 710)

    [answer] = await rows(db, "SELECT id, content FROM message WHERE role = 'assistant'", 1)
    assert answer["content"] == markdown
    deliveries = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id ORDER BY part", len(messages),
                            id=answer["id"])
    assert [d["tg_message_id"] for d in deliveries] == [m.message_id for m in messages]
    vote = telegram.user_presses(1001, last.message_id, button(last, "👍"))
    await telegram.wait_for(lambda: vote in telegram.callback_answers())
    assert "Saved" in telegram.callback_answers()[vote]["text"]


async def test_a_huge_group_answer_streams_into_a_few_messages_then_a_file(
    roomy, telegram, models, db
):
    from tests.e2e.helpers import labels

    markdown = huge_answer(300)
    models.set_reply("alpha-served", markdown)
    models.tokens_per_chunk = 400
    models.chunk_delay = 0.01
    telegram.user_sends("@chatmux_test_bot everything", chat_id=GROUP, user_id=7,
                        chat_type="group")
    last = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(GROUP)) and labels(m[-1]) and m[-1], timeout=30)
    assert last.document is not None
    messages = telegram.bot_messages(GROUP)
    assert len(messages) <= 4
    # While streaming, no more messages were opened than are kept.
    sends = [r for r in telegram.requests if r.method in ("sendMessage", "sendDocument")
             and r.ok and r.params.get("chat_id") == GROUP]
    assert len(sends) <= 4
    check_nothing_lost(messages, markdown, 300)


async def test_huge_arena_answers_keep_the_vote_under_b(roomy, telegram, models, db):
    from tests.e2e.helpers import button, labels

    for served in ("alpha-served", "beta-served"):
        models.set_reply(served, huge_answer(200))
    models.tokens_per_chunk = 3000
    telegram.user_sends("/arena", chat_id=1001)
    await telegram.wait_for_bot_messages(1001, 1)
    telegram.user_sends("fight long", chat_id=1001)
    b = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(1001)) and labels(m[-1])[:1] == ["🅰️ A is better"]
        and m[-1], timeout=30)
    messages = telegram.bot_messages(1001)[1:]
    assert len(messages) <= 8 and b.document is not None
    assert [m.document is not None for m in messages].count(True) == 2
    vote = telegram.user_presses(1001, b.message_id, button(b, "🅰️"))
    await telegram.wait_for(lambda: vote in telegram.callback_answers())
    assert telegram.callback_answers()[vote]["text"].startswith("Thanks!")
    await telegram.wait_for(lambda: telegram.bot_messages(1001)[1].text.startswith("Model A: "))
