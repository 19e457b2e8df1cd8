"""A user's message → drafts → the final answer, stored with what produced it."""

from __future__ import annotations

import itertools

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.formatting import render
from tests.e2e.helpers import rows
from tests.fakes.openai_api import count_tokens
from tests.harness import running_bot

PRIVATE = 1001


async def test_answer_streams_as_drafts_then_one_final_message_and_is_stored(
    bot, telegram, models, db
):
    reply = "Here is **the answer**: " + " ".join(f"word{i}" for i in range(60))
    models.set_reply("alpha-served", reply)
    models.tokens_per_chunk = 2
    models.chunk_delay = 0.01
    sent = telegram.user_sends("Hello, bot", chat_id=PRIVATE)

    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    expected = render(reply)
    assert answer.text == expected.text
    assert any(e["type"] == "bold" for e in answer.entities)

    drafts = telegram.drafts(PRIVATE)
    # The first text came at once: no "Thinking…" placeholder, the first frame is the text.
    assert drafts[0].text.startswith("Here is")
    texts = [d.text for d in drafts]
    assert 2 <= len(texts) < 31  # paced: far fewer frames than the 31 chunks streamed
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert drafts[-1].time <= telegram.requests[-1].time

    request = models.chat_requests()[-1]
    assert request["model"] == "alpha-served"
    assert request["messages"] == [
        {"role": "system", "content": "You are Alpha."},
        {"role": "user", "content": "Hello, bot"},
    ]
    assert request["temperature"] == 0.5 and request["max_tokens"] == 2048
    assert request["stream_options"] == {"include_usage": True}

    [user_row] = await rows(db, "SELECT * FROM message WHERE role = 'user'")
    [answer_row] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    assert user_row["content"] == "Hello, bot"
    assert answer_row["parent_id"] == user_row["id"]
    assert answer_row["content"] == reply and answer_row["status"] == "complete"
    assert answer_row["model_id"] == "alpha" and answer_row["served_model"] == "alpha-served"
    assert answer_row["system_prompt"] == "You are Alpha."
    assert answer_row["params"] == {"temperature": 0.5, "max_tokens": 2048}
    assert answer_row["completion_tokens"] == count_tokens(reply)
    assert answer_row["prompt_tokens"] > 0
    assert 0 <= answer_row["ttft_ms"] <= answer_row["total_ms"]
    assert answer_row["finish_reason"] == "stop"
    deliveries = await rows(db, "SELECT * FROM message_delivery ORDER BY message_id, part", 2)
    assert [(d["tg_chat_id"], d["tg_message_id"]) for d in deliveries] == [
        (PRIVATE, sent["message"]["message_id"]), (PRIVATE, answer.message_id)
    ]


async def test_model_command_switches_the_answering_model_and_persists(
    bot, telegram, models, db
):
    telegram.user_sends("/model", chat_id=PRIVATE)
    [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["✓ Alpha", "Beta"]

    query_id = telegram.user_presses(PRIVATE, menu.message_id, buttons[1]["callback_data"])
    await telegram.wait_for(lambda: query_id in telegram.callback_answers())
    assert "Beta" in telegram.callback_answers()[query_id]["text"]
    await telegram.wait_for(lambda: telegram.bot_messages(PRIVATE)[0].text.startswith("Now"))
    edited = telegram.bot_messages(PRIVATE)[0]
    assert [b["text"] for row in edited.reply_markup["inline_keyboard"] for b in row] == [
        "Alpha", "✓ Beta"
    ]

    telegram.user_sends("who are you?", chat_id=PRIVATE)
    answers = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert answers[-1].text == "[beta-served] who are you?"
    assert models.chat_requests()[-1]["model"] == "beta-served"
    [user] = await rows(db, "SELECT model_id FROM user_account WHERE telegram_id = :id",
                        id=PRIVATE)
    assert user["model_id"] == "beta"


async def test_new_drops_the_history_from_the_next_request(bot, telegram, models):
    telegram.user_sends("first question", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 1)
    telegram.user_sends("second question", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    with_history = models.chat_requests()[-1]["messages"]
    assert [m["content"] for m in with_history] == [
        "You are Alpha.", "first question", "[alpha-served] first question", "second question"
    ]

    telegram.user_sends("/new", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 3)
    telegram.user_sends("third question", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 4)
    assert models.chat_requests()[-1]["messages"] == [
        {"role": "system", "content": "You are Alpha."},
        {"role": "user", "content": "third question"},
    ]


async def test_ten_thousand_character_markdown_answer_arrives_as_several_valid_messages(
    bot, telegram, models, db
):
    sections = []
    for i in range(60):
        sections.append(f"## Part {i}\n\nThis is **paragraph {i}** with `inline code` and "
                        f"a [link](https://example.com/{i}). " * 2)
        if i % 15 == 0:
            sections.append("```python\n" + "".join(f"x_{n} = {n}\n" for n in range(40)) + "```")
    reply = "\n\n".join(sections)
    assert len(reply) >= 10_000
    models.set_reply("alpha-served", reply)
    models.tokens_per_chunk = 40
    telegram.user_sends("write a lot", chat_id=PRIVATE)

    messages = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(PRIVATE)) and "Part 59" in m[-1].text and m,
        timeout=20,
    )
    assert len(messages) >= 3
    assert all(m.entities for m in messages)  # formatting survived the split
    joined = "\n".join(m.text for m in messages)
    for i in range(60):
        assert f"Part {i}" in joined
    assert joined.count("x_39 = 39") == 4
    [answer] = await rows(db, "SELECT id FROM message WHERE role = 'assistant'", 1)
    deliveries = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id ORDER BY part", len(messages),
                            id=answer["id"])
    assert [d["tg_message_id"] for d in deliveries] == [m.message_id for m in messages]


async def test_a_500_gives_a_clear_message_and_the_next_message_is_answered(
    bot, telegram, models, db
):
    models.fail_next(500, message="CUDA out of memory")
    telegram.user_sends("are you there?", chat_id=PRIVATE)
    [error] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert error.text.startswith("⚠️ Alpha is not reachable right now")
    assert "CUDA" not in error.text and "500" not in error.text

    telegram.user_sends("and now?", chat_id=PRIVATE)
    messages = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert messages[-1].text == "[alpha-served] and now?"
    # The failed question is kept (🔄 under the error retries it) but is not re-sent glued
    # onto the next one.
    assert [m["content"] for m in models.chat_requests()[-1]["messages"]][1:] == ["and now?"]
    questions = await rows(db, "SELECT content FROM message WHERE role = 'user' ORDER BY id")
    assert [q["content"] for q in questions] == ["are you there?", "and now?"]
    statuses = await rows(db, "SELECT status, error_kind FROM message "
                              "WHERE role = 'assistant' ORDER BY id", 2)
    assert [(s["status"], s["error_kind"]) for s in statuses] == [
        ("error", "unavailable"), ("complete", None)
    ]


async def test_error_after_text_keeps_the_text_and_says_it_was_cut(bot, telegram, models, db):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(40)))
    models.fail_mid_stream_next(after_chunks=5, mode="error_event")
    telegram.user_sends("go", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text.startswith("w0 w1")
    assert "The answer was cut off" in answer.text
    [row] = await rows(db, "SELECT status, error_kind, content FROM message "
                           "WHERE role = 'assistant'", 1)
    assert row["status"] == "cut" and row["error_kind"] == "stream_error"
    assert row["content"].startswith("w0 w1") and "cut off" not in row["content"]


async def test_model_timeout_is_reported_within_the_timeout(bot, telegram, models):
    models.hang_next(30)
    telegram.user_sends("hello?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=8)
    assert "took too long" in answer.text


async def test_stickers_and_photos_get_a_polite_line(bot, telegram, models):
    telegram.user_sends(chat_id=PRIVATE, sticker=True)
    [reply] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert reply.text.startswith("I can only read text")
    telegram.user_sends(chat_id=PRIVATE, photo=True)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert models.chat_requests() == []


async def test_replies_in_the_users_language(bot, telegram, models):
    models.fail_next(503)
    telegram.user_sends("привет", chat_id=PRIVATE, language_code="ru")
    [reply] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert "сейчас недоступна" in reply.text


async def test_unknown_command_is_not_sent_to_the_model(bot, telegram, models):
    telegram.user_sends("/frobnicate", chat_id=PRIVATE)
    [reply] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert "/help" in reply.text and models.chat_requests() == []


async def test_start_help_and_command_menu(bot, telegram):
    telegram.user_sends("/start", chat_id=PRIVATE, first_name="Ann")
    [start] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert start.text.startswith("Hi, Ann!") and "/model" in start.text
    telegram.user_sends("/help", chat_id=PRIVATE)
    messages = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert "/new" in messages[-1].text
    assert all(c in messages[-1].text
               for c in ("/system", "/persona", "/settings", "/usage", "/privacy"))
    menus = telegram.commands()
    assert any({c["command"] for c in cmds} == {"start", "help", "model", "new", "arena",
                                                "leaderboard", "stats", "lang", "cancel",
                                                "system", "persona", "settings", "usage",
                                                "privacy"}
               for cmds in menus.values())


async def test_a_model_without_a_title_is_shown_by_its_id(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    from tests.harness import running_bot

    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"beta": {"title": None}}):
        telegram.user_sends("/model", chat_id=PRIVATE)
        [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
        assert [b["text"] for row in menu.reply_markup["inline_keyboard"] for b in row] == [
            "✓ Alpha", "beta"
        ]


async def test_leaving_older_messages_out_is_said_once(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    overrides = {"alpha": {"context_window": 400, "params": {"max_tokens": 60}}}
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides):
        note = "ℹ️ The oldest messages of this conversation no longer fit"
        shown = []
        for i in range(8):
            telegram.user_sends(f"question {i} " + "word " * 60, chat_id=6161)
            answer = (await telegram.wait_for_bot_messages(6161, i + 1))[-1].text
            shown.append(note in answer)
        assert shown.count(True) == 1 and shown[0] is False, shown
        sent = models.chat_requests()[-1]["messages"]
        assert sent[0]["role"] == "system" and sent[-1]["content"].startswith("question 7")
        assert len(sent) < 1 + 2 * 8  # older turns were left out
        dropped = await rows(db, "SELECT context_dropped FROM message WHERE role = 'assistant' "
                                 "ORDER BY id")
        counts = [r["context_dropped"] or 0 for r in dropped]
        assert counts[0] == 0 and counts[-1] > 0 and counts == sorted(counts)


async def test_a_turn_costs_the_bot_three_short_transactions(bot, telegram, models, db):
    """Store the question (with its asker, chat and history), store the answer, record its
    delivery while settling the conversation: three transactions per turn, none more (each
    costs a round trip and, under load, a pooled connection)."""
    ours = db.engine.sync_engine  # the test's own queries are not counted
    begun: list[object] = []

    def on_begin(connection) -> None:
        if connection.engine is not ours:
            begun.append(connection)

    head = ("SELECT m.id FROM conversation c JOIN message m ON m.id = c.head_message_id "
            "WHERE m.role = 'assistant'")
    telegram.user_sends("warm up", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 1)
    await rows(db, head, 1)  # the first turn is settled
    event.listen(Engine, "begin", on_begin)
    try:
        telegram.user_sends("and now?", chat_id=PRIVATE)
        await telegram.wait_for_bot_messages(PRIVATE, 2)
        answers = await rows(db, "SELECT id FROM message WHERE role = 'assistant'", 2)
        last = max(a["id"] for a in answers)
        await rows(db, f"{head} AND m.id = :last", 1, last=last)  # the second turn is settled
    finally:
        event.remove(Engine, "begin", on_begin)
    assert len(begun) == 3
