"""Postgres stopping and coming back while users chat (a private server on a free port, and a
private Redis: never the shared ones): nobody gets "Something went wrong", nothing hangs, no
question is answered unstored, a vote said to be saved is in the database, an answer written
during a restart is stored, and the bot carries on by itself once Postgres is back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from storage.db import create_engine
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot
from tests.postgres_server import PrivatePostgres
from tests.redis_server import PrivateRedis

CHAT = 5201
UNAVAILABLE = "⚠️ Temporarily unavailable, please try again in a minute."
UNAVAILABLE_RU = "⚠️ Временно недоступно, попробуйте ещё раз через минуту."
INTERNAL = "⚠️ Something went wrong on my side. Please try again."
LONG = " ".join(f"w{i}" for i in range(40))
DELIVERED_ANSWERS = ("SELECT d.id FROM message_delivery d JOIN message m ON m.id = d.message_id "
                     "WHERE m.role = 'assistant'")


@pytest.fixture
async def postgres() -> AsyncIterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        await server.start()
        yield server
    finally:
        await server.cleanup()


@pytest.fixture
async def redis(tmp_path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def bot_on(monkeypatch, tmp_path, telegram, models, database_url: str, redis: PrivateRedis):
    return running_bot(monkeypatch, tmp_path, telegram, models, database_url, None,
                       REDIS_URL=redis.url, REDIS_PREFIX="pg-outage")


async def stored(url: str, query: str, count: int, **params) -> list:
    """Rows of `query` in the private database (waiting up to 5 s for `count` of them)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as db:
            return list(await rows(db, query, count, **params))
    finally:
        await engine.dispose()


async def settled(url: str, query: str, done: Callable[[list], bool]) -> None:
    """Wait (up to 10 s) until the rows of `query` in the private database satisfy `done`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not done(found := await stored(url, query, 0)):
        assert loop.time() < deadline, f"not settled: {found}"
        await asyncio.sleep(0.1)


def shown(telegram) -> list[str]:
    return [m.text for m in telegram.bot_messages(CHAT)]


async def test_postgres_and_redis_outages_are_told_plainly_and_the_bot_resumes_by_itself(
    monkeypatch, tmp_path, telegram, models, postgres, redis
):
    url = await postgres.create_database("chatmux")
    async with bot_on(monkeypatch, tmp_path, telegram, models, url, redis):
        telegram.user_sends("before", chat_id=CHAT)
        [first] = await telegram.wait_for_bot_messages(CHAT, 1)
        assert first.text == "[alpha-served] before"
        vote = telegram.user_presses(CHAT, first.message_id, button(first, "👍"))
        assert (await toast(telegram, vote)).startswith("👍 Saved")

        await postgres.kill()  # a crash: every pooled connection dies with it
        asked = len(models.chat_requests())
        telegram.user_sends("during", chat_id=CHAT)
        [_, refused] = await telegram.wait_for_bot_messages(CHAT, 2)
        assert refused.text == UNAVAILABLE
        # In the user's language, and a button press gets a toast (it can be pressed again).
        telegram.user_sends("во время", chat_id=CHAT, language_code="ru")
        [*_, refused_ru] = await telegram.wait_for_bot_messages(CHAT, 3)
        assert refused_ru.text == UNAVAILABLE_RU
        press = telegram.user_presses(CHAT, first.message_id, button(first, "👎"))
        assert await toast(telegram, press) == UNAVAILABLE
        assert not telegram.callback_answers()[press].get("show_alert")
        # A question that could not be stored was not answered either.
        assert len(models.chat_requests()) == asked

        await postgres.start()  # on the same port; nothing told the bot
        telegram.user_sends("after", chat_id=CHAT)
        [*_, answer] = await telegram.wait_for_bot_messages(CHAT, 4)
        assert answer.text == "[alpha-served] after" and labels(answer)[:2] == ["👍", "👎"]
        again = telegram.user_presses(CHAT, first.message_id, button(first, "👎"))
        assert (await toast(telegram, again)).startswith("👎 Saved")
        vote_after = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
        assert (await toast(telegram, vote_after)).startswith("👍 Saved")

        # Redis goes too: the bot answers without it; with Postgres gone as well, it refuses.
        await redis.kill()
        telegram.user_sends("no redis", chat_id=CHAT)
        [*_, plain] = await telegram.wait_for_bot_messages(CHAT, 5)
        assert plain.text == "[alpha-served] no redis" and labels(plain)[:2] == ["👍", "👎"]
        await postgres.kill()
        telegram.user_sends("nothing", chat_id=CHAT)
        [*_, refused_again] = await telegram.wait_for_bot_messages(CHAT, 6)
        assert refused_again.text == UNAVAILABLE
        await postgres.start()
        await redis.restart()
        telegram.user_sends("all back", chat_id=CHAT)
        [*_, last] = await telegram.wait_for_bot_messages(CHAT, 7)
        assert last.text == "[alpha-served] all back"
        assert INTERNAL not in shown(telegram)

    # What the user was told was saved is there; what was refused is not.
    questions = await stored(url, "SELECT content FROM message WHERE role = 'user' "
                                  "ORDER BY id", 4)
    assert [q["content"] for q in questions] == ["before", "after", "no redis", "all back"]
    answers = await stored(url, "SELECT content FROM message WHERE role = 'assistant' "
                                "ORDER BY id", 4)
    assert [a["content"] for a in answers] == [
        f"[alpha-served] {q}" for q in ("before", "after", "no redis", "all back")]
    votes = await stored(url, "SELECT m.content, v.value FROM vote v "
                              "JOIN message m ON m.id = v.message_id ORDER BY m.id", 2)
    assert [(v["content"], v["value"]) for v in votes] == [
        ("[alpha-served] before", -1), ("[alpha-served] after", 1)]


async def test_an_answer_written_while_postgres_restarts_is_stored_once_it_is_back(
    monkeypatch, tmp_path, telegram, models, postgres, redis, caplog
):
    url = await postgres.create_database("chatmux")
    models.set_reply("alpha-served", LONG)
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    caplog.set_level(logging.WARNING, logger="storage.outage")
    async with bot_on(monkeypatch, tmp_path, telegram, models, url, redis):
        telegram.user_sends("tell me", chat_id=CHAT)
        await telegram.wait_for(lambda: len(telegram.drafts(CHAT)) >= 2)
        await postgres.kill()
        # The answer is written; storing it fails and is tried again…
        await telegram.wait_for(lambda: any("storing the answer" in r.getMessage()
                                            for r in caplog.records))
        await postgres.start()
        # …and succeeds: the answer is shown with its buttons, and they work.
        [answer] = await telegram.wait_for_bot_messages(CHAT, 1, timeout=15)
        assert answer.text == LONG and labels(answer)[:2] == ["👍", "👎"]
        vote = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
        assert (await toast(telegram, vote)).startswith("👍 Saved")
    [row] = await stored(url, "SELECT content, status FROM message "
                              "WHERE role = 'assistant'", 1)
    assert (row["content"], row["status"]) == (LONG, "complete")
    assert [v["value"] for v in await stored(url, "SELECT value FROM vote", 1)] == [1]


async def test_an_answer_postgres_never_takes_is_shown_marked_unsaved_without_buttons(
    monkeypatch, tmp_path, telegram, models, postgres, redis
):
    monkeypatch.setattr("bot.answering.STORE_PATIENCE", 1.0)
    url = await postgres.create_database("chatmux")
    models.set_reply("alpha-served", lambda body: (
        LONG if body["messages"][-1]["content"] == "tell me" else "ok"))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    async with bot_on(monkeypatch, tmp_path, telegram, models, url, redis):
        telegram.user_sends("tell me", chat_id=CHAT)
        await telegram.wait_for(lambda: len(telegram.drafts(CHAT)) >= 2)
        await postgres.kill()
        [answer] = await telegram.wait_for_bot_messages(CHAT, 1, timeout=15)
        assert answer.text.startswith(LONG + "\n\n⚠️ This answer could not be saved")
        assert labels(answer) == []  # nothing to vote on: no vote can be lost

        await postgres.start()
        # The conversation goes back to before the question whose answer was lost (here: to
        # its start), so the next question is not asked with it.
        await settled(url, "SELECT head_message_id AS head FROM conversation",
                      lambda found: [r["head"] for r in found] == [None])
        telegram.user_sends("next", chat_id=CHAT)
        [_, following] = await telegram.wait_for_bot_messages(CHAT, 2)
        assert following.text == "ok" and labels(following)[:2] == ["👍", "👎"]
        assert [m["content"] for m in models.chat_requests()[-1]["messages"]][1:] == ["next"]
        assert INTERNAL not in shown(telegram)
    answers = await stored(url, "SELECT content FROM message WHERE role = 'assistant'", 1)
    assert [a["content"] for a in answers] == ["ok"]


async def test_a_restart_between_turns_goes_unnoticed_and_a_clean_shutdown_is_an_outage_too(
    monkeypatch, tmp_path, telegram, models, postgres, redis
):
    """A clean shutdown (`pg_ctl stop -m fast`: sessions are told, then closed) is an outage
    too; a restart (stop and start) in between turns needs nothing from anyone."""
    url = await postgres.create_database("chatmux")
    async with bot_on(monkeypatch, tmp_path, telegram, models, url, redis):
        telegram.user_sends("one", chat_id=CHAT)
        await telegram.wait_for_bot_messages(CHAT, 1)
        await stored(url, DELIVERED_ANSWERS, 1)  # the turn is over, its last commit made
        await postgres.restart()  # the pool's connections all died meanwhile
        telegram.user_sends("two", chat_id=CHAT)
        [_, second] = await telegram.wait_for_bot_messages(CHAT, 2)
        assert second.text == "[alpha-served] two"  # the first request after it just works
        await postgres.stop("fast")
        telegram.user_sends("three", chat_id=CHAT)
        [*_, refused] = await telegram.wait_for_bot_messages(CHAT, 3)
        assert refused.text == UNAVAILABLE
        assert len(models.chat_requests()) == 2
        await postgres.start()
    history = await stored(url, "SELECT content FROM message WHERE role = 'user' "
                                "ORDER BY id", 2)
    assert [h["content"] for h in history] == ["one", "two"]


async def test_the_bot_started_while_postgres_is_down_waits_for_it(
    monkeypatch, tmp_path, telegram, models, postgres, redis, caplog
):
    url = await postgres.create_database("chatmux")
    await postgres.stop("fast")
    caplog.set_level(logging.WARNING, logger="chatmux")

    async def start_postgres_once_the_bot_waits() -> None:
        await telegram.wait_for(lambda: any("waiting for it" in r.getMessage()
                                            for r in caplog.records))
        await postgres.start()

    starting = asyncio.create_task(start_postgres_once_the_bot_waits())
    try:
        async with bot_on(monkeypatch, tmp_path, telegram, models, url, redis):
            await starting
            telegram.user_sends("hello", chat_id=CHAT)
            [answer] = await telegram.wait_for_bot_messages(CHAT, 1)
            assert answer.text == "[alpha-served] hello"
    finally:
        starting.cancel()


async def test_a_vote_the_database_refused_can_be_pressed_again_at_once(
    monkeypatch, bot, telegram
):
    """The commit itself fails (Postgres went away between reading the answer and saving the
    vote): the toast says so, and pressing again is not taken for a double tap ("Already
    saved") but saves the vote."""
    from storage.repositories.feedback import FeedbackRepository

    real = FeedbackRepository.toggle_vote
    failures = [ConnectionResetError(104, "Connection reset by peer")]

    async def toggle_vote(self, *args, **kwargs):
        if failures:
            raise failures.pop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(FeedbackRepository, "toggle_vote", toggle_vote)
    telegram.user_sends("rate me", chat_id=CHAT)
    [answer] = await telegram.wait_for_bot_messages(CHAT, 1)
    first = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
    assert await toast(telegram, first) == UNAVAILABLE
    second = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
    assert (await toast(telegram, second)).startswith("👍 Saved")
