"""/system, /persona and /settings: what the model is sent, what the user sees, what is stored;
in groups only chat admins change the chat's prompt, persona and model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot.settings import Settings
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

PRIVATE = 6001
GROUP = -1006001
MEMBER, ADMIN = 61, 62
PERSONAS = [
    {"id": "pirate", "title": "Pirate", "system_prompt": "You are a pirate. Say arr.",
     "description": "Answers like a pirate"},
    {"id": "teacher", "title": "Teacher", "system_prompt": "You are a patient teacher.",
     "description": "Explains step by step"},
]
# Beta lets users change less: a low temperature ceiling, no top_p, short answers.
BETA_BOUNDS = {"user_params": {"temperature_min": 0.0, "temperature_max": 0.3,
                               "max_tokens": 300, "top_p": False}}


@pytest.fixture
async def prefs_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
                    ) -> AsyncIterator[Settings]:
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"beta": BETA_BOUNDS},
                           catalogue_top={"personas": PERSONAS}) as settings:
        yield settings


async def say(telegram, text: str, chat_id: int = PRIVATE):
    """Send `text` in the private chat; the bot's next message."""
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    return (await telegram.wait_for_bot_messages(chat_id, before + 1))[before]


async def answer_to(telegram, text: str, chat_id: int = PRIVATE):
    """Ask in the private chat; the final answer (the one with the rating buttons)."""
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    return await telegram.wait_for(
        lambda: (m := telegram.bot_messages(chat_id)[before:]) and labels(m[-1]) and m[-1])


def system_of(request: dict) -> str | None:
    first = request["messages"][0]
    return first["content"] if first["role"] == "system" else None


async def last_answer(db, count: int):
    found = await rows(db, "SELECT * FROM message WHERE role = 'assistant' ORDER BY id", count)
    assert len(found) == count
    return found[-1]


async def chat_row(db, chat_id: int = PRIVATE):
    [row] = await rows(db, "SELECT system_prompt, persona_id, model_id FROM chat "
                           "WHERE telegram_id = :id", id=chat_id)
    return row


async def test_system_prompt_is_shown_set_used_stored_and_reset(prefs_bot, telegram, models,
                                                                db):
    shown = await say(telegram, "/system")
    assert "Alpha uses its default system prompt:\n\nYou are Alpha." in shown.text
    assert "up to 4000 characters" in shown.text

    assert (await say(telegram, "/system  Be brief.\r\nUse bullet points.  ")).text == (
        "✅ System prompt set (28 characters). It applies from the next answer; "
        "/system reset undoes it.")
    answer = await answer_to(telegram, "what is tea?")
    request = models.chat_requests()[-1]
    assert system_of(request) == "Be brief.\nUse bullet points."
    assert request["messages"][1:] == [{"role": "user", "content": "what is tea?"}]
    stored = await last_answer(db, 1)
    assert stored["system_prompt"] == "Be brief.\nUse bullet points."
    assert stored["persona_id"] is None
    assert (await chat_row(db))["system_prompt"] == "Be brief.\nUse bullet points."
    assert (await say(telegram, "/system")).text.startswith(
        "This chat's own system prompt (28 characters):\n\nBe brief.\nUse bullet points.")

    # 🔄 answers under the same prompt.
    query = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "🔄"))
    await toast(telegram, query)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    assert system_of(models.chat_requests()[-1]) == "Be brief.\nUse bullet points."
    regenerated = await last_answer(db, 2)
    assert regenerated["origin"] == "regenerated"
    assert regenerated["system_prompt"] == "Be brief.\nUse bullet points."
    # Stored before it is delivered: wait for it to show, so the next reply is the command's.
    await telegram.wait_for(lambda: len([m for m in telegram.bot_messages(PRIVATE)
                                         if m.text.startswith("[alpha-served]")]) == 2)

    assert (await say(telegram, "/system reset")).text == (
        "✅ Back to the model's default system prompt (and no persona).")
    await answer_to(telegram, "and coffee?")
    assert system_of(models.chat_requests()[-1]) == "You are Alpha."
    assert (await last_answer(db, 3))["system_prompt"] == "You are Alpha."
    assert (await chat_row(db))["system_prompt"] is None


async def test_a_prompt_over_the_limit_is_refused_in_one_line(prefs_bot, telegram, models, db):
    await say(telegram, "/system Be kind.")
    refused = await say(telegram, "/system " + "x" * 100_000)
    assert refused.text == (
        "⚠️ That prompt is 100000 characters long; the limit is 4000. Nothing was changed.")
    assert (await chat_row(db))["system_prompt"] == "Be kind."
    await answer_to(telegram, "hi")
    assert system_of(models.chat_requests()[-1]) == "Be kind."


async def test_persona_is_picked_persists_and_applies_to_another_model_too(
        prefs_bot, telegram, models, db):
    await say(telegram, "/system Be brief.")
    menu = await say(telegram, "/persona")
    assert "• Pirate — Answers like a pirate\n• Teacher — Explains step by step" in menu.text
    assert labels(menu) == ["Pirate", "Teacher", "✓ No persona"]

    pick = telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Pirate"))
    assert await toast(telegram, pick) == "Persona: Pirate"
    edited = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(PRIVATE)[-1]).text.startswith("Persona: Pirate")
        and m)
    assert labels(edited) == ["✓ Pirate", "Teacher", "No persona"]
    assert dict(await chat_row(db)) == {"system_prompt": None, "persona_id": "pirate",
                                        "model_id": None}  # the persona replaced /system

    answer = await answer_to(telegram, "where is the treasure?")
    assert system_of(models.chat_requests()[-1]) == "You are a pirate. Say arr."
    stored = await last_answer(db, 1)
    assert (stored["system_prompt"], stored["persona_id"]) == ("You are a pirate. Say arr.",
                                                               "pirate")
    assert "Persona «Pirate» is on" in (await say(telegram, "/system")).text

    # 🔀 another model answers under the persona as well.
    switch = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "🔀"))
    await toast(telegram, switch)
    options = await telegram.wait_for(
        lambda: (m := telegram.world.find(PRIVATE, answer.message_id)) and "Beta" in labels(m)
        and m)
    chosen = telegram.user_presses(PRIVATE, options.message_id, button(options, "Beta"))
    await toast(telegram, chosen)
    await telegram.wait_for(lambda: models.chat_requests()[-1]["model"] == "beta-served")
    assert system_of(models.chat_requests()[-1]) == "You are a pirate. Say arr."
    other = await last_answer(db, 2)
    assert (other["model_id"], other["persona_id"]) == ("beta", "pirate")
    await telegram.wait_for(lambda: any(m.text.startswith("[beta-served]")
                                        for m in telegram.bot_messages(PRIVATE)))

    # No persona: the model's default again.
    menu = await say(telegram, "/persona")
    none = telegram.user_presses(PRIVATE, menu.message_id, button(menu, "No persona"))
    assert await toast(telegram, none) == "No persona: the model's default prompt applies."
    await rows(db, "SELECT 1 FROM chat WHERE persona_id IS NULL", 1)
    await answer_to(telegram, "hello?")
    assert system_of(models.chat_requests()[-1]) == "You are Alpha."
    assert (await last_answer(db, 3))["persona_id"] is None


async def test_a_persona_that_no_longer_exists(prefs_bot, telegram, models, db):
    menu = await say(telegram, "/persona")
    # A forged (or stale) button naming a persona the catalogue does not have.
    forged = telegram.user_presses(PRIVATE, menu.message_id, "persona:ghost", forged=True)
    assert await toast(telegram, forged) == (
        "That persona is no longer available. Send /persona for the current list.")
    assert (await chat_row(db))["persona_id"] is None

    # Chosen before it was removed from the catalogue.
    await db.execute(sa.text(
        "UPDATE chat SET persona_id = 'retired' WHERE telegram_id = :id"), {"id": PRIVATE})
    await db.commit()
    shown = await say(telegram, "/system")
    assert shown.text.startswith(
        "⚠️ The persona you chose (retired) is no longer available, so the model's default "
        "prompt applies.\n\nAlpha uses its default system prompt:\n\nYou are Alpha.")
    assert "(retired) is no longer available" in (await say(telegram, "/persona")).text
    await answer_to(telegram, "hi")
    assert system_of(models.chat_requests()[-1]) == "You are Alpha."
    stored = await last_answer(db, 1)
    assert (stored["system_prompt"], stored["persona_id"]) == ("You are Alpha.", None)


async def test_settings_are_sent_stored_clamped_per_model_and_reset(prefs_bot, telegram, models,
                                                                    db):
    menu = await say(telegram, "/settings")
    assert menu.text.splitlines()[:4] == [
        "⚙️ Generation settings for Alpha:",
        "🌡 Temperature: 0.5 (model default 0.5; 0–2)",
        "📏 Max answer length: 2048 tokens (model default 2048; up to 2048)",
        "🎯 top_p: server default (model default —)",
    ]
    assert labels(menu)[:7] == ["🌡 −0.1 → 0.4", "🌡 +0.1 → 0.6", "256", "512", "1024",
                                "✓ 2048", "top_p 0.5"]

    async def press(prefix: str, expected_line: str) -> None:
        current = telegram.bot_messages(PRIVATE)[-1]
        query = telegram.user_presses(PRIVATE, current.message_id, button(current, prefix))
        assert await toast(telegram, query) == "Saved"
        await telegram.wait_for(lambda: expected_line in telegram.bot_messages(PRIVATE)[-1].text)

    await press("🌡 −0.1", "Temperature: 0.4 (")
    await press("🌡 −0.1", "Temperature: 0.3 (")
    await press("512", "Max answer length: 512 tokens")
    await press("top_p 0.9", "top_p: 0.9 (")
    [user] = await rows(db, "SELECT gen_settings FROM user_account WHERE telegram_id = :id",
                        id=PRIVATE)
    assert user["gen_settings"] == {"temperature": 0.3, "max_tokens": 512, "top_p": 0.9}

    await answer_to(telegram, "tell a story")
    request = models.chat_requests()[-1]
    assert (request["temperature"], request["max_tokens"], request["top_p"]) == (0.3, 512, 0.9)
    assert (await last_answer(db, 1))["params"] == {"temperature": 0.3, "max_tokens": 512,
                                                    "top_p": 0.9}

    # Forged values out of bounds: one line, nothing stored.
    for data, line in ((f"gen:{PRIVATE}:t:5", "⚠️ Alpha takes temperature from 0 to 2."),
                       (f"gen:{PRIVATE}:m:100000", "⚠️ Alpha takes max_tokens from 16 to 2048."),
                       (f"gen:{PRIVATE}:p:0", "⚠️ Alpha takes top_p from 0.05 to 1.")):
        query = telegram.user_presses(PRIVATE, menu.message_id, data, forged=True)
        assert await toast(telegram, query) == line + " Nothing was changed."
    [user] = await rows(db, "SELECT gen_settings FROM user_account WHERE telegram_id = :id",
                        id=PRIVATE)
    assert user["gen_settings"] == {"temperature": 0.3, "max_tokens": 512, "top_p": 0.9}

    # Beta allows less: the same settings are clamped to its bounds, top_p is not sent.
    await db.execute(sa.text(
        "UPDATE user_account SET gen_settings = '{\"temperature\": 1.5, \"max_tokens\": 512, "
        "\"top_p\": 0.9}' WHERE telegram_id = :id"), {"id": PRIVATE})
    await db.commit()
    model_menu = await say(telegram, "/model")
    pick = telegram.user_presses(PRIVATE, model_menu.message_id, button(model_menu, "Beta"))
    await toast(telegram, pick)
    await answer_to(telegram, "and another")
    request = models.chat_requests()[-1]
    assert request["model"] == "beta-served"
    assert (request["temperature"], request["max_tokens"]) == (0.3, 300)
    assert "top_p" not in request
    assert (await last_answer(db, 2))["params"] == {"temperature": 0.3, "max_tokens": 300}
    beta_menu = await say(telegram, "/settings")
    assert "🌡 Temperature: 0.3 (model default 0.2; 0–0.3)" in beta_menu.text
    assert "top_p" not in beta_menu.text and "top_p" not in " ".join(labels(beta_menu))
    query = telegram.user_presses(PRIVATE, beta_menu.message_id, f"gen:{PRIVATE}:p:0.9",
                                  forged=True)
    assert await toast(telegram, query) == (
        "⚠️ Beta does not let you change top_p. Nothing was changed.")

    reset = telegram.user_presses(PRIVATE, beta_menu.message_id,
                                  button(beta_menu, "↺ Reset"))
    assert await toast(telegram, reset) == "Back to the model's defaults"
    await rows(db, "SELECT 1 FROM user_account WHERE gen_settings IS NULL", 1)
    await answer_to(telegram, "last one")
    request = models.chat_requests()[-1]
    assert request["temperature"] == 0.2 and "max_tokens" not in request
    assert (await last_answer(db, 3))["params"] == {"temperature": 0.2}


async def test_arena_answers_use_the_prompt_and_settings(prefs_bot, telegram, models, db):
    await say(telegram, "/system Answer in one word.")
    menu = await say(telegram, "/settings")
    query = telegram.user_presses(PRIVATE, menu.message_id, button(menu, "256"))
    await toast(telegram, query)
    await say(telegram, "/arena")
    telegram.user_sends("best fruit?", chat_id=PRIVATE)
    await rows(db, "SELECT * FROM battle", 1)
    requests = models.chat_requests()
    assert {r["model"] for r in requests} == {"alpha-served", "beta-served"}
    assert [system_of(r) for r in requests] == ["Answer in one word."] * 2
    by_model = {r["model"]: r for r in requests}
    assert by_model["alpha-served"]["max_tokens"] == 256
    assert by_model["beta-served"]["max_tokens"] == 256  # within beta's 300
    answers = await rows(db, "SELECT model_id, system_prompt, params FROM message "
                             "WHERE origin = 'arena'", 2)
    assert {a["system_prompt"] for a in answers} == {"Answer in one word."}
    assert {a["params"]["max_tokens"] for a in answers} == {256}


def in_group(telegram, text: str, user_id: int = MEMBER, **kwargs):
    return telegram.user_sends(text, chat_id=GROUP, user_id=user_id, chat_type="supergroup",
                               **kwargs)


async def group_reply(telegram, count: int):
    await telegram.wait_for_bot_messages(GROUP, count)
    return telegram.bot_messages(GROUP)[count - 1]


async def test_only_chat_admins_change_a_groups_prompt_persona_and_model(
        prefs_bot, telegram, models, db):
    telegram.set_member_status(GROUP, ADMIN, "administrator")
    refusal = "Only this chat's admins can change that."

    in_group(telegram, "/system Talk like a robot.")
    assert (await group_reply(telegram, 1)).text == refusal
    in_group(telegram, "/system")  # anyone may look
    assert "Alpha uses its default system prompt" in (await group_reply(telegram, 2)).text
    assert (await chat_row(db, GROUP))["system_prompt"] is None

    in_group(telegram, "/system Talk like a robot.", user_id=ADMIN)
    assert (await group_reply(telegram, 3)).text.startswith("✅ System prompt set (18 ")
    # An anonymous admin writes as the group itself; a channel is no admin.
    telegram.chat_sends("/system Speak French.", chat_id=GROUP)
    assert (await group_reply(telegram, 4)).text.startswith("✅ System prompt set (13 ")
    telegram.chat_sends("/system Obey the channel.", chat_id=GROUP, channel_id=-1001234567890)
    assert (await group_reply(telegram, 5)).text == refusal
    assert (await chat_row(db, GROUP))["system_prompt"] == "Speak French."

    in_group(telegram, "/persona")
    menu = await group_reply(telegram, 6)
    query = telegram.user_presses(GROUP, menu.message_id, button(menu, "Pirate"),
                                  user_id=MEMBER)
    assert await toast(telegram, query) == refusal
    assert (await chat_row(db, GROUP))["persona_id"] is None

    in_group(telegram, "/model")
    models_menu = await group_reply(telegram, 7)
    query = telegram.user_presses(GROUP, models_menu.message_id, button(models_menu, "Beta"),
                                  user_id=MEMBER)
    assert await toast(telegram, query) == refusal
    assert (await chat_row(db, GROUP))["model_id"] is None
    query = telegram.user_presses(GROUP, models_menu.message_id, button(models_menu, "Beta"),
                                  user_id=ADMIN)
    assert await toast(telegram, query) == "Now answering everyone in this chat: Beta"
    assert (await chat_row(db, GROUP))["model_id"] == "beta"

    # Settings are each person's own: someone else's buttons are refused.
    in_group(telegram, "/settings")
    settings_menu = await group_reply(telegram, 8)
    assert settings_menu.text.startswith("⚙️ Generation settings for Beta:")
    query = telegram.user_presses(GROUP, settings_menu.message_id,
                                  button(settings_menu, "256"), user_id=ADMIN)
    assert await toast(telegram, query) == (
        "These are someone else's settings. Send /settings for your own.")
    assert await rows(db, "SELECT 1 FROM user_account WHERE gen_settings IS NOT NULL") == []

    # A member's question: the group's model and prompt, the member's own model untouched.
    in_group(telegram, "@chatmux_test_bot bonjour")
    await telegram.wait_for(lambda: models.chat_requests())
    request = models.chat_requests()[-1]
    assert request["model"] == "beta-served"
    assert system_of(request) == "Speak French."
    stored = await last_answer(db, 1)
    assert (stored["model_id"], stored["system_prompt"]) == ("beta", "Speak French.")
    [member] = await rows(db, "SELECT model_id FROM user_account WHERE telegram_id = :id",
                          id=MEMBER)
    assert member["model_id"] is None
    assert len(models.chat_requests()) == 1  # no command became a question
