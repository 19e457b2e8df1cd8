"""Graceful shutdown: answers being written get SHUTDOWN_GRACE seconds to finish; the ones
still streaming then end visibly (their text so far, a note, 🔄), are stored as interrupted,
and are neither lost nor asked again by the next process."""

from __future__ import annotations

import asyncio
import itertools
import signal

from bot.texts import t
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

PRIVATE = 9101
GROUP = -1009102
NOTE = "⚠️ Interrupted: the bot is restarting. Tap 🔄 to try again."
NOTE_RU = "⚠️ Прервано: бот перезапускается. Нажмите 🔄, чтобы попробовать снова."
LONG = " ".join(f"w{i}" for i in range(2000))  # 40 s at the pace set below


def slow(models, reply: object = LONG) -> None:
    for served in ("alpha-served", "beta-served"):
        models.set_reply(served, reply)
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02


def contents(request) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] != "system"]


async def test_an_answer_cut_by_shutdown_ends_visibly_and_is_regenerated_after_restart(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    slow(models)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5"):
        telegram.user_sends("talk forever", chat_id=PRIVATE)
        await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3)
        telegram.user_sends("and then?", chat_id=PRIVATE)  # waits in the queue
        await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 1)
        [queued] = telegram.bot_messages(PRIVATE)
        assert queued.text.startswith("⏳ Queued")
    # The bot stopped: the answer it was writing is a real message, with the note and 🔄.
    _, answer = telegram.bot_messages(PRIVATE)
    assert answer.text.startswith("w0 w1") and answer.text.endswith("\n\n" + NOTE)
    assert "w1999" not in answer.text
    assert labels(answer) == ["👍", "👎", "🔄", "🔀", "✏️"]
    assert models.cancelled_requests >= 1  # the model call was cancelled
    assert len(models.chat_requests()) == 1  # the queued question was left for the next
    [row] = await rows(db, "SELECT id, content, status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "interrupted"
    assert row["content"].startswith("w0 w1") and answer.text.startswith(row["content"])
    [delivery] = await rows(db, "SELECT tg_message_id FROM message_delivery "
                                "WHERE message_id = :id", 1, id=row["id"])
    assert delivery["tg_message_id"] == answer.message_id

    models.set_reply("alpha-served", lambda body: f"re: {body['messages'][-1]['content']}")
    models.chunk_delay = 0
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5"):
        # The next process answers what waited, after the interrupted answer, once.
        await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 3)
        assert telegram.bot_messages(PRIVATE)[2].text == "re: and then?"
        assert contents(models.chat_requests()[1]) == ["talk forever", row["content"],
                                                       "and then?"]
        vote = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "👍"))
        assert await toast(telegram, vote) == t("vote_up", "en")  # judged like any answer
        telegram.user_presses(PRIVATE, answer.message_id, button(answer, "🔄"))
        await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 4)
        regenerated = telegram.bot_messages(PRIVATE)[3]
        assert regenerated.text == "re: talk forever" and "🔄" in labels(regenerated)
    # The interrupted question was asked again only by the 🔄 press.
    assert [contents(r)[-1] for r in models.chat_requests()] == [
        "talk forever", "and then?", "talk forever"]
    origins = await rows(db, "SELECT origin, status FROM message WHERE role = 'assistant' "
                             "ORDER BY id", 3)
    assert [(r["origin"], r["status"]) for r in origins] == [
        ("original", "interrupted"), ("original", "complete"), ("regenerated", "complete")]
    [vote_row] = await rows(db, "SELECT message_id, value FROM vote", 1)
    assert (vote_row["message_id"], vote_row["value"]) == (row["id"], 1)


async def test_an_answer_that_ends_within_the_grace_is_delivered_as_usual(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    slow(models, " ".join(f"w{i}" for i in range(20)))
    models.chunk_delay = 0.05  # a second in all: it outlasts the start of shutdown
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="10"):
        telegram.user_sends("a short one", chat_id=PRIVATE)
        await telegram.wait_for(lambda: telegram.drafts(PRIVATE))
    [answer] = telegram.bot_messages(PRIVATE)
    assert answer.text == " ".join(f"w{i}" for i in range(20))
    assert labels(answer) == ["👍", "👎", "🔄", "🔀", "✏️"]
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "complete"
    assert models.cancelled_requests == 0


async def test_an_answer_with_no_text_yet_gets_the_note_alone_in_its_topic(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    models.hold()  # the model has not said anything yet when the bot stops
    try:
        async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                               redis_prefix, SHUTDOWN_GRACE="0.3"):
            topic = telegram.create_topic(GROUP, "Ideas", user_id=91)
            telegram.user_sends("@chatmux_test_bot ideas?", chat_id=GROUP, user_id=91,
                                chat_type="supergroup", thread_id=topic, language_code="ru")
            await telegram.wait_for(lambda: models.held == 1)
    finally:
        models.release()
    [note] = telegram.topic_messages(GROUP, topic)
    assert note.text == NOTE_RU and labels(note) == ["🔄"]
    assert telegram.bot_messages(GROUP) == [note]  # nothing outside the topic
    [row] = await rows(db, "SELECT content, status FROM message WHERE role = 'assistant'", 1)
    assert (row["content"], row["status"]) == ("", "interrupted")
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix):
        telegram.user_presses(GROUP, note.message_id, button(note, "🔄"), user_id=91)
        await telegram.wait_for(lambda: len(telegram.topic_messages(GROUP, topic)) == 2)
    assert telegram.topic_messages(GROUP, topic)[1].text == "[alpha-served] ideas?"
    assert len(telegram.bot_messages(GROUP)) == 2  # nothing outside the topic


async def test_a_group_answer_being_edited_ends_with_the_note(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    slow(models)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5", EDIT_INTERVAL_GROUP="0.1"):
        telegram.user_sends("@chatmux_test_bot go on", chat_id=GROUP, user_id=92,
                            chat_type="group")
        await telegram.wait_for(lambda: telegram.bot_messages(GROUP))
    [answer] = telegram.bot_messages(GROUP)  # the streamed message itself, edited to the end
    assert answer.text.startswith("w0 w1") and answer.text.endswith("\n\n" + NOTE)
    assert "🔄" in labels(answer)
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "interrupted"


async def test_an_arena_battle_cut_during_b_ends_both_sides_visibly(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    calls = itertools.count()
    slow(models, lambda body: "a short side" if next(calls) == 0 else LONG)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5"):
        telegram.user_sends("/arena", chat_id=PRIVATE)
        await telegram.wait_for_bot_messages(PRIVATE, 1)
        telegram.user_sends("who wins?", chat_id=PRIVATE)
        await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 2
                                and any(d.text.startswith("Model B\n\nw0 w1")
                                        for d in telegram.drafts(PRIVATE)))
    _, a, b = telegram.bot_messages(PRIVATE)
    assert a.text == "Model A\n\na short side" and labels(a) == ["👍", "👎", "🔄", "🔀", "✏️"]
    assert b.text.startswith("Model B\n\nw0 w1") and b.text.endswith("\n\n" + NOTE)
    assert labels(b) == ["👍", "👎", "🔄", "🔀", "✏️"]
    answers = await rows(db, "SELECT origin, status FROM message WHERE role = 'assistant' "
                             "ORDER BY id", 2)
    assert [(r["origin"], r["status"]) for r in answers] == [
        ("arena", "complete"), ("arena", "interrupted")]
    assert await rows(db, "SELECT id FROM battle") == []  # half a battle is no battle


async def test_an_arena_battle_cut_during_a_ends_both_sides_visibly(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    slow(models)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5"):
        telegram.user_sends("/arena", chat_id=PRIVATE)
        await telegram.wait_for_bot_messages(PRIVATE, 1)
        telegram.user_sends("who wins?", chat_id=PRIVATE)
        await telegram.wait_for(lambda: any(d.text.startswith("Model A\n\nw0 w1")
                                            for d in telegram.drafts(PRIVATE)))
    _, a, b = telegram.bot_messages(PRIVATE)
    assert a.text.startswith("Model A\n\nw0 w1") and a.text.endswith("\n\n" + NOTE)
    assert "🔄" in labels(a)
    assert b.text == f"Model B\n{NOTE}" and labels(b) == ["🔄"]
    assert len(models.chat_requests()) == 1  # B was never asked
    answers = await rows(db, "SELECT content, status FROM message WHERE role = 'assistant' "
                             "ORDER BY id", 2)
    assert [r["status"] for r in answers] == ["interrupted", "interrupted"]
    assert answers[0]["content"].startswith("w0 w1") and answers[1]["content"] == ""


async def test_shutdown_does_not_wait_for_a_slow_telegram(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    slow(models)
    loop = asyncio.get_running_loop()
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, SHUTDOWN_GRACE="0.5"):
        telegram.user_sends("talk forever", chat_id=PRIVATE)
        await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3)
        # Telegram now makes the bot wait a minute for every message in this chat.
        telegram.fail_next("sendMessage", error_code=429,
                           description="Too Many Requests: retry after 60", retry_after=60)
        stopping = loop.time()
    # Not the minute an answer's delivery would normally wait out (`patient_delivery`), nor
    # the ~20 s after which `run_polling` gives up on an orderly stop (`shutdown_bound`).
    assert loop.time() - stopping < 15
    assert telegram.bot_messages(PRIVATE) == []
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant'", 1)
    assert row["status"] == "undelivered"  # not shown: never part of the history


async def test_sigterm_to_the_real_process_ends_its_answer_visibly(
    tmp_path, telegram, models, database_url, redis_prefix
):
    from tests.e2e.processes import start_run
    from tests.harness import write_catalogue

    slow(models)
    write_catalogue(tmp_path / "models.yaml", models)
    process = await start_run(tmp_path, telegram, database_url, redis_prefix,
                              DRAFT_INTERVAL="0.05", SHUTDOWN_GRACE="0.5")
    try:
        telegram.user_sends("talk forever", chat_id=PRIVATE)
        await telegram.wait_for(lambda: len(telegram.drafts(PRIVATE)) >= 3, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    [answer] = telegram.bot_messages(PRIVATE)
    assert answer.text.startswith("w0 w1") and answer.text.endswith("\n\n" + NOTE)
    assert "🔄" in labels(answer)
