"""Forum topics (and topics in private chats): each topic is a conversation of its own, with its
own history, lock and queue, and the bot answers in the topic it was asked in."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, labels, rows

FORUM = -1008001
PRIVATE = 8002
BOT = "@chatmux_test_bot"


def ask(telegram, text: str, thread: int | None, *, user_id: int = 81, **kwargs):
    return telegram.user_sends(f"{BOT} {text}", chat_id=FORUM, user_id=user_id,
                               chat_type="supergroup", thread_id=thread, **kwargs)


async def final(telegram, thread: int | None, count: int, chat_id: int = FORUM) -> list:
    """The bot's messages in the topic once `count` answers there carry their buttons."""
    return await telegram.wait_for(
        lambda: len(m := [x for x in telegram.topic_messages(chat_id, thread)
                          if x.reply_markup]) >= count and m)


def history(request) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] != "system"]


async def test_each_topic_has_its_own_history_and_answers_land_in_it(bot, telegram, models, db):
    cooking = telegram.create_topic(FORUM, "Cooking", user_id=81)
    travel = telegram.create_topic(FORUM, "Travel", user_id=82)
    ask(telegram, "my secret number is 42", cooking)
    [first] = await final(telegram, cooking, 1)
    assert first.text == "[alpha-served] my secret number is 42"
    ask(telegram, "what is my secret number?", travel, user_id=82)
    await final(telegram, travel, 1)
    # Topic B's question went to the model without topic A's history (no leak).
    assert history(models.chat_requests()[-1]) == ["what is my secret number?"]
    ask(telegram, "and in General?", None, user_id=83)
    await final(telegram, None, 1)
    assert history(models.chat_requests()[-1]) == ["and in General?"]
    ask(telegram, "repeat it", cooking)
    await final(telegram, cooking, 2)
    assert history(models.chat_requests()[-1]) == [
        "my secret number is 42", "[alpha-served] my secret number is 42", "repeat it"]
    # Nothing was sent outside its topic, and no send was refused.
    assert [m.thread_id for m in telegram.bot_messages(FORUM)].count(None) == 1
    assert not [r for r in telegram.requests if r.error and r.method != "getUpdates"]
    conversations = await rows(db, "SELECT thread_id FROM conversation ORDER BY thread_id", 3)
    assert [c["thread_id"] for c in conversations] == [0, cooking, travel]


async def test_topics_do_not_wait_for_each_other(bot, telegram, models):
    slow = telegram.create_topic(FORUM, "Slow", user_id=81)
    quick = telegram.create_topic(FORUM, "Quick", user_id=81)
    models.set_reply("alpha-served", lambda body: (
        " ".join(f"w{i}" for i in range(60)) if "slow" in body["messages"][-1]["content"]
        else "quick answer"))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.04  # the slow answer streams for ~2.4 s
    ask(telegram, "slow question", slow)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 1)
    ask(telegram, "quick question", quick)
    [answer] = await final(telegram, quick, 1)
    assert answer.text == "quick answer"
    assert not [m for m in telegram.topic_messages(FORUM, slow) if m.reply_markup]
    await final(telegram, slow, 1)


async def test_new_in_a_topic_starts_over_only_there(bot, telegram, models):
    one = telegram.create_topic(FORUM, "One", user_id=81)
    two = telegram.create_topic(FORUM, "Two", user_id=81)
    ask(telegram, "first in one", one)
    await final(telegram, one, 1)
    ask(telegram, "first in two", two)
    await final(telegram, two, 1)
    telegram.user_sends("/new", chat_id=FORUM, user_id=81, chat_type="supergroup",
                        thread_id=one)
    await telegram.wait_for(lambda: any((m.text or "").startswith("New conversation")
                                        for m in telegram.topic_messages(FORUM, one)))
    ask(telegram, "second in one", one)
    await final(telegram, one, 2)
    assert history(models.chat_requests()[-1]) == ["second in one"]
    ask(telegram, "second in two", two)
    await final(telegram, two, 2)
    assert history(models.chat_requests()[-1]) == [
        "first in two", "[alpha-served] first in two", "second in two"]


async def test_buttons_in_a_topic_answer_there(bot, telegram, models):
    topic = telegram.create_topic(FORUM, "Buttons", user_id=81)
    ask(telegram, "tell me", topic)
    [answer] = await final(telegram, topic, 1)
    telegram.user_presses(FORUM, answer.message_id, button(answer, "🔄"), user_id=81)
    await final(telegram, topic, 2)
    telegram.user_presses(FORUM, answer.message_id, button(answer, "✏️"), user_id=81)
    prompt = await telegram.wait_for(
        lambda: [m for m in telegram.topic_messages(FORUM, topic) if "improved" in m.text])
    assert prompt and all(m.thread_id == topic for m in telegram.bot_messages(FORUM))


async def test_a_topic_the_bot_opened_is_not_a_reply_to_the_bot(bot, telegram, models):
    topic = telegram.create_topic(FORUM, "Announcements", user_id=81, by_bot=True)
    telegram.user_sends("just talking among ourselves", chat_id=FORUM, user_id=84,
                        chat_type="supergroup", thread_id=topic)
    ask(telegram, "now a question", topic)
    [answer] = await final(telegram, topic, 1)
    assert answer.text == "[alpha-served] now a question"
    await asyncio.sleep(0.3)
    assert len(models.chat_requests()) == 1


async def test_private_chat_topics_are_separate_conversations(bot, telegram, models):
    models.first_token_delay = 0.5  # slow enough for a placeholder draft in each topic
    first = telegram.create_topic(PRIVATE, "Work")
    second = telegram.create_topic(PRIVATE, "Home")
    telegram.user_sends("remember: blue", chat_id=PRIVATE, thread_id=first)
    await final(telegram, first, 1, chat_id=PRIVATE)
    telegram.user_sends("what colour?", chat_id=PRIVATE, thread_id=second)
    [answer] = await final(telegram, second, 1, chat_id=PRIVATE)
    assert answer.text == "[alpha-served] what colour?"
    assert history(models.chat_requests()[-1]) == ["what colour?"]
    assert {d.thread_id for d in telegram.drafts(PRIVATE)} == {first, second}
    # Opening a topic is a service message, not something to answer.
    assert [labels(m) for m in telegram.bot_messages(PRIVATE)] == [labels(answer)] * 2
