"""✏️ stores only what the user meant as the improved answer: in groups a reply to the bot's
prompt, in private chats the next plain text; commands end edit mode, it expires, and text
that shows nothing is refused."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, labels, rows, toast

PRIVATE = 9001
GROUP = -1009002
BOT = "@chatmux_test_bot"
ZERO_WIDTH = "\u200b\u200d \u2060\ufeff\u3164"


async def private_edit_prompt(telegram, db, question: str = "capital of France?"):
    """Ask in the private chat, press ✏️; returns (answer, prompt)."""
    start = len(telegram.bot_messages(PRIVATE))
    telegram.user_sends(question, chat_id=PRIVATE)
    answer = (await telegram.wait_for_bot_messages(PRIVATE, start + 1))[-1]
    # Its delivery is recorded just after it shows: a person is never that quick, a test is.
    await rows(db, "SELECT 1 FROM message_delivery WHERE tg_chat_id = :chat "
                   "AND tg_message_id = :id", 1, chat=PRIVATE, id=answer.message_id)
    await toast(telegram, telegram.user_presses(PRIVATE, answer.message_id,
                                                button(answer, "✏️")))
    prompt = (await telegram.wait_for_bot_messages(PRIVATE, start + 2))[-1]
    assert "improved answer" in prompt.text
    return answer, prompt


async def last_text(telegram, chat_id: int, count: int) -> str:
    return (await telegram.wait_for_bot_messages(chat_id, count))[-1].text


async def test_in_groups_only_a_reply_to_the_prompt_is_the_edit(bot, telegram, models, db):
    telegram.user_sends(f"{BOT} capital of France?", chat_id=GROUP, user_id=91,
                        chat_type="supergroup")
    answer = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(GROUP)) and labels(m[0]) and m[0])
    await toast(telegram, telegram.user_presses(GROUP, answer.message_id, button(answer, "✏️"),
                                                user_id=91))
    prompt = (await telegram.wait_for_bot_messages(GROUP, 2))[-1]
    # The editor talks to someone else, and sends a sticker, before replying to the prompt.
    telegram.user_sends("Bob, are you coming tonight?", chat_id=GROUP, user_id=91,
                        chat_type="supergroup")
    telegram.user_sends(chat_id=GROUP, user_id=91, chat_type="supergroup", sticker=True)
    # …and asks the bot something: a question, answered as one.
    telegram.user_sends(f"{BOT} and of Spain?", chat_id=GROUP, user_id=91,
                        chat_type="supergroup")
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    await telegram.wait_for(lambda: len([m for m in telegram.bot_messages(GROUP)
                                         if m.reply_markup and "Spain" in m.text]) == 1)
    assert await rows(db, "SELECT * FROM answer_edit") == []
    assert len(telegram.bot_messages(GROUP)) == 3  # no "send it as text" for the sticker

    telegram.user_sends("Paris.", chat_id=GROUP, user_id=91, chat_type="supergroup",
                        reply_to_message_id=prompt.message_id)
    [edit] = await rows(db, "SELECT * FROM answer_edit", 1)
    [edited] = await rows(db, "SELECT content FROM message WHERE id = :id", id=edit["edited_id"])
    assert edited["content"] == "Paris."
    assert len(models.chat_requests()) == 2


async def test_new_model_and_arena_end_edit_mode_and_still_work(bot, telegram, models, db):
    await private_edit_prompt(telegram, db)
    telegram.user_sends("/new", chat_id=PRIVATE)
    assert (await last_text(telegram, PRIVATE, 3)).startswith("New conversation started")
    telegram.user_sends("what about Italy?", chat_id=PRIVATE)
    assert await last_text(telegram, PRIVATE, 4) == "[alpha-served] what about Italy?"
    # The new question started the new conversation: the old one is not its history.
    assert [m["content"] for m in models.chat_requests()[-1]["messages"]][1:] == [
        "what about Italy?"]

    await private_edit_prompt(telegram, db, "q2")  # messages 5, 6
    telegram.user_sends("/model", chat_id=PRIVATE)
    assert (await last_text(telegram, PRIVATE, 7)).startswith("Current model")
    telegram.user_sends("a question, not an edit", chat_id=PRIVATE)
    assert await last_text(telegram, PRIVATE, 8) == "[alpha-served] a question, not an edit"

    await private_edit_prompt(telegram, db, "q3")  # messages 9, 10
    telegram.user_sends("/arena", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 11)
    telegram.user_sends("/arena", chat_id=PRIVATE)  # and off again
    await telegram.wait_for_bot_messages(PRIVATE, 12)
    telegram.user_sends("still a question", chat_id=PRIVATE)
    assert await last_text(telegram, PRIVATE, 13) == "[alpha-served] still a question"

    await private_edit_prompt(telegram, db, "q4")  # messages 14, 15
    telegram.user_sends("/stats", chat_id=PRIVATE)
    assert (await last_text(telegram, PRIVATE, 16)).startswith("Your contribution")
    telegram.user_sends("/cancel", chat_id=PRIVATE)  # nothing left to cancel
    assert await last_text(telegram, PRIVATE, 17) == "Nothing to cancel."
    assert await rows(db, "SELECT * FROM answer_edit") == []


async def test_cancel_still_cancels(bot, telegram, db):
    await private_edit_prompt(telegram, db)
    telegram.user_sends("/cancel", chat_id=PRIVATE)
    assert await last_text(telegram, PRIVATE, 3) == "Cancelled."


async def test_an_edit_that_shows_nothing_is_refused(bot, telegram, models, db):
    await private_edit_prompt(telegram, db)
    telegram.user_sends(ZERO_WIDTH, chat_id=PRIVATE)
    refused = await last_text(telegram, PRIVATE, 3)
    assert refused == "That shows nothing. Send the improved answer as text, or /cancel."
    assert await rows(db, "SELECT * FROM answer_edit") == []
    telegram.user_sends("Paris.", chat_id=PRIVATE)  # still in edit mode
    assert (await last_text(telegram, PRIVATE, 4)).startswith("✏️ Saved")
    assert len(await rows(db, "SELECT * FROM answer_edit", 1)) == 1
    # Nor is an invisible question sent to a model.
    telegram.user_sends(ZERO_WIDTH, chat_id=PRIVATE)
    assert (await last_text(telegram, PRIVATE, 5)).startswith("Your message is empty")
    assert len(models.chat_requests()) == 1


async def test_edit_mode_expires(bot, telegram, models, db, monkeypatch):
    monkeypatch.setattr("bot.handlers.rating.EDIT_TTL", 0.5, raising=False)
    await private_edit_prompt(telegram, db)
    await asyncio.sleep(0.7)
    telegram.user_sends("is this still an edit?", chat_id=PRIVATE)
    assert await last_text(telegram, PRIVATE, 3) == "[alpha-served] is this still an edit?"
    assert await rows(db, "SELECT * FROM answer_edit") == []


async def test_an_edit_belongs_to_the_topic_it_was_asked_in(bot, telegram, models, db):
    work = telegram.create_topic(PRIVATE, "Work")
    home = telegram.create_topic(PRIVATE, "Home")
    telegram.user_sends("capital of France?", chat_id=PRIVATE, thread_id=work)
    answer = (await telegram.wait_for_bot_messages(PRIVATE, 1))[-1]
    await toast(telegram, telegram.user_presses(PRIVATE, answer.message_id,
                                                button(answer, "✏️")))
    prompt = (await telegram.wait_for_bot_messages(PRIVATE, 2))[-1]
    assert prompt.thread_id == work
    telegram.user_sends("dinner ideas?", chat_id=PRIVATE, thread_id=home)
    reply = (await telegram.wait_for_bot_messages(PRIVATE, 3))[-1]
    assert (reply.text, reply.thread_id) == ("[alpha-served] dinner ideas?", home)
    telegram.user_sends("Paris.", chat_id=PRIVATE, thread_id=work)
    assert (await last_text(telegram, PRIVATE, 4)).startswith("✏️ Saved")
    [edit] = await rows(db, "SELECT m.content FROM answer_edit e "
                            "JOIN message m ON m.id = e.edited_id", 1)
    assert edit["content"] == "Paris."


async def test_a_double_tap_on_edit_asks_once(bot, telegram, models, db):
    telegram.user_sends("capital of Spain?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    data = button(answer, "✏️")
    first = telegram.user_presses(PRIVATE, answer.message_id, data)
    second = telegram.user_presses(PRIVATE, answer.message_id, data)
    await toast(telegram, first)
    await toast(telegram, second)
    await asyncio.sleep(0.3)
    prompts = [m for m in telegram.bot_messages(PRIVATE) if "improved answer" in (m.text or "")]
    assert len(prompts) == 1
