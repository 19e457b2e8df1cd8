"""Groups: the bot answers what is meant for it, ignores the rest, and stores only people who
talk to it."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from tests.e2e.helpers import rows

GROUP = -1007001
PRIVATE = 7002
UNKNOWN = "I don't know that command. See /help."


def say(telegram, text: str, *, user_id: int = 71, chat_id: int = GROUP, **kwargs):
    return telegram.user_sends(text, chat_id=chat_id, user_id=user_id, chat_type="supergroup",
                               **kwargs)


async def answered(telegram, count: int, chat_id: int = GROUP) -> list:
    """The bot's messages once `count` of them are final (answers stream by edits in groups;
    the buttons come with the last one)."""
    return await telegram.wait_for(
        lambda: len(m := telegram.bot_messages(chat_id)) >= count
        and all(x.reply_markup or not (x.text or "").startswith("[") for x in m) and m)


async def settled(telegram, chat_id: int, count: int) -> list:
    """The bot's messages once `count` are shown and nothing more arrives for a moment."""
    await telegram.wait_for_bot_messages(chat_id, count)
    await asyncio.sleep(0.4)
    return telegram.bot_messages(chat_id)


async def test_commands_for_other_bots_are_ignored(bot, telegram, models, db):
    for text in ("/foo@otherbot", "/start@otherbot", "/ban@combot @spammer",
                 "/new@otherbot", "/ask@otherbot @chatmux_test_bot what is 2+2?"):
        say(telegram, text)
    say(telegram, "/help@chatmux_test_bot")  # ours: answered, and the last one
    [help_] = await settled(telegram, GROUP, 1)
    assert help_.text.startswith("Commands:")
    assert models.chat_requests() == []  # no command became a question


async def test_bare_unknown_commands_in_groups_only_when_addressed(bot, telegram, models):
    say(telegram, "/foo")
    say(telegram, "@chatmux_test_bot hello")
    [answer] = await settled(telegram, GROUP, 1)
    assert answer.text == "[alpha-served] hello"
    say(telegram, "/foo", reply_to_message_id=answer.message_id)  # a reply to the bot
    say(telegram, "/bar@chatmux_test_bot")
    say(telegram, "/baz @chatmux_test_bot")
    messages = await settled(telegram, GROUP, 4)
    assert [m.text for m in messages[1:]] == [UNKNOWN] * 3
    assert len(models.chat_requests()) == 1


async def test_private_chats_answer_bare_unknown_commands_but_not_other_bots(bot, telegram):
    telegram.user_sends("/foo@otherbot", chat_id=PRIVATE)
    telegram.user_sends("/foo", chat_id=PRIVATE)
    replies = await settled(telegram, PRIVATE, 1)
    assert [r.text for r in replies] == [UNKNOWN]


async def test_bystanders_are_not_stored(bot, telegram, models, db):
    say(telegram, "hello everyone", user_id=81, first_name="Bystander", username="by_stander")
    say(telegram, "/foo", user_id=82, first_name="Other")
    say(telegram, "/start@otherbot", user_id=83)
    telegram.user_sends(chat_id=GROUP, user_id=84, chat_type="supergroup", sticker=True)
    say(telegram, "nice", user_id=85, reply_to_message_id=1)  # a reply to a bystander
    await asyncio.sleep(0.5)
    assert telegram.bot_messages(GROUP) == []
    assert await rows(db, "SELECT * FROM user_account") == []
    assert await rows(db, "SELECT * FROM chat") == []  # not even the group's title

    say(telegram, "@chatmux_test_bot hi", user_id=86, first_name="Asker")
    await telegram.wait_for_bot_messages(GROUP, 1)
    people = await rows(db, "SELECT telegram_id, first_name FROM user_account", 1)
    assert [(p["telegram_id"], p["first_name"]) for p in people] == [(86, "Asker")]
    assert [c["telegram_id"] for c in await rows(db, "SELECT telegram_id FROM chat")] == [GROUP]


CHANNEL = -1001234567890
INTERNAL = "⚠️ Something went wrong on my side. Please try again."


async def test_anonymous_admins_and_channels_are_answered_as_the_chat(bot, telegram, models, db):
    from tests.e2e.helpers import button

    telegram.chat_sends("@chatmux_test_bot hi from the admins", chat_id=GROUP,
                        author_signature="Boss")
    [first] = await answered(telegram, 1)
    assert first.text == "[alpha-served] hi from the admins"
    telegram.chat_sends("and more", chat_id=GROUP, reply_to_message_id=first.message_id)
    await answered(telegram, 2)
    telegram.chat_sends("@chatmux_test_bot hello from the channel", chat_id=GROUP,
                        channel_id=CHANNEL, channel_title="News")
    third = (await answered(telegram, 3))[-1]
    assert third.text == "[alpha-served] hello from the channel"
    # The admins' second question continued their conversation with the group.
    assert [m["content"] for m in models.chat_requests()[1]["messages"]][1:] == [
        "hi from the admins", "[alpha-served] hi from the admins", "and more"]

    # The chat is the author: stored without any name, username or language.
    authors = await rows(db, "SELECT u.telegram_id, u.username, u.first_name, u.language_code "
                             "FROM message m JOIN user_account u ON u.id = m.author_id "
                             "WHERE m.role = 'user' ORDER BY m.id", 3)
    assert [tuple(a.values()) for a in authors] == [
        (GROUP, None, None, None), (GROUP, None, None, None), (CHANNEL, None, None, None)]

    # Members judge the chat's answers as themselves.
    query = telegram.user_presses(GROUP, first.message_id, button(first, "👍"), user_id=75)
    await telegram.wait_for(lambda: query in telegram.callback_answers())
    [vote] = await rows(db, "SELECT u.telegram_id FROM vote v "
                            "JOIN user_account u ON u.id = v.user_id", 1)
    assert vote["telegram_id"] == 75
    assert INTERNAL not in [m.text for m in telegram.bot_messages(GROUP)]


async def test_commands_on_behalf_of_a_chat(bot, telegram, models, db):
    telegram.chat_sends("/start@chatmux_test_bot", chat_id=GROUP)
    [hello] = await telegram.wait_for_bot_messages(GROUP, 1)
    assert hello.text.startswith("Hi, there!")
    # Only the person who asked judges a battle, and a chat is nobody in particular.
    telegram.chat_sends("/arena@chatmux_test_bot", chat_id=GROUP)
    refused = (await telegram.wait_for_bot_messages(GROUP, 2))[-1]
    assert refused.text == ("Arena battles are judged by the person who asked, so they are "
                            "not available when writing on behalf of a chat.")
    # Even with arena mode on (say, set before this rule), a chat's question gets one answer.
    await db.execute(sa.text("UPDATE user_account SET arena_mode = true"))
    await db.commit()
    telegram.chat_sends("@chatmux_test_bot one answer please", chat_id=GROUP)
    answer = (await answered(telegram, 3))[-1]
    assert answer.text == "[alpha-served] one answer please"
    assert await rows(db, "SELECT * FROM battle") == []
    telegram.chat_sends("just chatting", chat_id=GROUP)  # not for the bot: ignored
    await asyncio.sleep(0.4)
    assert len(telegram.bot_messages(GROUP)) == 3
