"""/lang: the bot's language chosen by the user, over their Telegram client's."""

from __future__ import annotations

from tests.e2e.helpers import button, labels, rows, toast

PRIVATE = 1001


async def test_lang_overrides_the_client_language_everywhere_and_auto_restores_it(
    bot, telegram, models, db
):
    telegram.user_sends("/lang", chat_id=PRIVATE, language_code="en")
    [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert menu.text.startswith("Language: English")
    assert labels(menu) == ["English", "Русский", "✓ Automatic (from Telegram)"]
    query = telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Русский"))
    await toast(telegram, query)
    await telegram.wait_for(lambda: telegram.bot_messages(PRIVATE)[0].text.startswith("Готово"))
    [user] = await rows(db, "SELECT lang FROM user_account")
    assert user["lang"] == "ru"

    # A command and a model's error, both for a client still set to English.
    telegram.user_sends("/help", chat_id=PRIVATE, language_code="en")
    messages = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert messages[-1].text.startswith("Команды:")
    models.fail_next(503)
    telegram.user_sends("hello", chat_id=PRIVATE, language_code="en")
    messages = await telegram.wait_for_bot_messages(PRIVATE, 3)
    assert "сейчас недоступна" in messages[-1].text

    telegram.user_sends("/lang", chat_id=PRIVATE, language_code="en")
    messages = await telegram.wait_for_bot_messages(PRIVATE, 4)
    menu = messages[-1]
    assert "✓ Русский" in labels(menu)
    query = telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Автоматически"))
    await toast(telegram, query)
    await telegram.wait_for(
        lambda: telegram.bot_messages(PRIVATE)[-1].text.startswith("Done. Language: English"))
    [user] = await rows(db, "SELECT lang FROM user_account")
    assert user["lang"] is None


async def test_a_forged_language_gets_one_line_and_changes_nothing(bot, telegram, db):
    telegram.user_sends("/lang", chat_id=PRIVATE)
    [menu] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    query = telegram.user_presses(PRIVATE, menu.message_id, "lang:xx", forged=True)
    assert await toast(telegram, query) == "That language is no longer available."
    [user] = await rows(db, "SELECT lang FROM user_account")
    assert user["lang"] is None


async def test_the_command_menu_is_set_for_every_language(bot, telegram):
    await telegram.wait_for(lambda: len(telegram.commands()) >= 2)
    menus = telegram.commands()
    russian = next(cmds for key, cmds in menus.items() if key.endswith(":ru"))
    assert {"command": "lang", "description": "Выбрать язык"} in russian
