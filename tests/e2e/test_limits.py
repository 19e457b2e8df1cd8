"""Limits end to end: the rate limit, quotas per model and tier, /usage, admins exempt, and
/ban and /unban (banned users get no answers and cannot vote)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.helpers import button, rows, toast
from tests.harness import running_bot

ADMIN = 777
USER = 888
QUOTAS = {"alpha": {"quota": {"standard": {"messages": 2, "per": "day"},
                              "premium": {"messages": 3, "per": "day"}}}}


async def say(telegram, text: str, chat_id: int, **who) -> str:
    """Send `text` and return the bot's next message in that chat."""
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id, **who)
    messages = await telegram.wait_for_bot_messages(chat_id, before + 1, timeout=15)
    return messages[-1].text


async def answered(telegram, text: str, chat_id: int, **who):
    """Send a question and wait for its full answer (the one with buttons)."""
    telegram.user_sends(text, chat_id=chat_id, **who)
    return await telegram.wait_for(
        lambda: next((m for m in telegram.bot_messages(chat_id)
                      if m.text.endswith(f"] {text}") and m.reply_markup), None), timeout=15)


@pytest.fixture(params=["redis", "memory"])
async def limited_bot(request, monkeypatch, tmp_path, telegram, models, database_url,
                      redis_prefix):
    """Two questions at once, then one a minute; alpha's quota 2 a day (premium: 3). The
    buckets in Redis, or in the process (no REDIS_URL)."""
    prefix = redis_prefix if request.param == "redis" else None
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, prefix,
                           catalogue_overrides=QUOTAS, ADMIN_IDS=str(ADMIN),
                           RATE_LIMIT_BURST="2", RATE_LIMIT_PER_MINUTE="1") as settings:
        yield settings


async def test_over_the_rate_limit_one_line_and_no_model_call(limited_bot, telegram, models,
                                                              db):
    await answered(telegram, "one", USER)
    await answered(telegram, "two", USER)
    reply = await say(telegram, "three", USER)
    # A token a minute, less the time the two answers took.
    assert re.fullmatch(r"⏳ Too many messages at once\. Try again in (1 min|\d\d s)\.",
                        reply), reply
    assert [r["messages"][-1]["content"] for r in models.chat_requests()] == ["one", "two"]
    # Refused before it was stored: nothing written for it.
    assert await rows(db, "SELECT id FROM message WHERE content = 'three'") == []
    # The line is said once: more messages meanwhile are dropped without another one.
    telegram.user_sends("four", chat_id=USER)
    # Commands that call no model still work.
    usage = await say(telegram, "/usage", USER)
    assert [m.text for m in telegram.bot_messages(USER)][-2:] == [reply, usage]
    assert "Right now you can send 0 of 2 questions in a row; one more every 1 min." in usage
    # Admins are exempt from the rate limit and from quotas.
    for text in ("a1", "a2", "a3", "a4"):
        await answered(telegram, text, ADMIN)
    assert await say(telegram, "/usage", ADMIN) == "You are an admin: no limits apply to you."


async def test_quota_per_model_and_tier(monkeypatch, tmp_path, telegram, models, database_url,
                                        redis_prefix, db):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=QUOTAS, ADMIN_IDS=str(ADMIN)):
        await answered(telegram, "q1", USER, username="bob")
        second = await answered(telegram, "q2", USER, username="bob")
        reply = await say(telegram, "q3", USER, username="bob")
        assert re.fullmatch(r"⛔ Limit reached for Alpha: 2 messages per day\. Resets in "
                            r"\d+ (h|min|s)( \d+ min)?\.", reply), reply
        assert len(models.chat_requests()) == 2
        # 🔄 on an answer is a model call too: refused with the same line, nothing asked.
        pressed = telegram.user_presses(USER, second.message_id, button(second, "🔄"))
        assert (await toast(telegram, pressed)).startswith("⛔ Limit reached for Alpha")
        # So is answering an edited question.
        [q2] = await rows(db, "SELECT d.tg_message_id FROM message m JOIN message_delivery d "
                              "ON d.message_id = m.id WHERE m.content = 'q2'")
        telegram.user_edits(USER, q2["tg_message_id"], "q2, edited")
        offer = await telegram.wait_for(
            lambda: next((m for m in telegram.bot_messages(USER)
                          if m.text.startswith("You edited")), None), timeout=15)
        pressed = telegram.user_presses(USER, offer.message_id, button(offer, "Answer"))
        assert (await toast(telegram, pressed)).startswith("⛔ Limit reached for Alpha")
        assert len(models.chat_requests()) == 2

        usage = await say(telegram, "/usage", USER, username="bob")
        assert usage.startswith("Your limits (tier: standard):\nAlpha: 0 of 2 left today, "
                                "resets in "), usage
        assert "\nBeta: no limit\n" in usage and "No limit on how fast" in usage

        reply = await say(telegram, "/tier @Bob premium", ADMIN)
        assert reply == "✅ @bob is now in tier premium"
        await answered(telegram, "q4", USER, username="bob")
        # The refused q3 stayed stored but out of the history: q4 follows q2's answer.
        request = models.chat_requests()[-1]
        assert [m["content"] for m in request["messages"] if m["role"] == "user"] == [
            "q1", "q2", "q4"]
        reply = await say(telegram, "q5", USER, username="bob")
        assert reply.startswith("⛔ Limit reached for Alpha: 3 messages per day.")
        # Another model has no quota; in Russian, /usage says so in Russian.
        usage = await say(telegram, "/usage", USER, username="bob", language_code="ru")
        assert usage.startswith("Ваши лимиты (уровень: premium):\nAlpha: осталось 0 из 3 на "
                                "сегодня, обновится через "), usage
        assert "Beta: без лимита" in usage
        audit = await rows(db, "SELECT action, target, detail FROM audit_log")
        assert [(a["action"], a["target"], a["detail"]) for a in audit] == [
            ("tier", str(USER), {"tier": "premium", "was": "standard"})]


async def test_ban_and_unban(monkeypatch, tmp_path, telegram, models, database_url,
                             redis_prefix, db):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN)):
        answer = await answered(telegram, "hi", USER, username="bob")
        assert await say(telegram, "/ban @bob spamming", ADMIN) == (
            "✅ @bob is banned: no answers, no votes")
        telegram.user_sends("hello", chat_id=USER, username="bob")
        telegram.user_sends("/usage", chat_id=USER, username="bob")
        pressed = telegram.user_presses(USER, answer.message_id, button(answer, "👍"))
        assert await toast(telegram, pressed) == "You are blocked."
        assert await rows(db, "SELECT * FROM vote") == []

        assert await say(telegram, "/unban 888", ADMIN) == "✅ @bob is unbanned"
        await answered(telegram, "again", USER, username="bob")
        # While banned: no answer, nothing stored, no model call.
        texts = [m.text for m in telegram.bot_messages(USER)]
        assert texts == ["[alpha-served] hi", "[alpha-served] again"], texts
        assert await rows(db, "SELECT id FROM message WHERE content = 'hello'") == []
        assert [r["messages"][-1]["content"] for r in models.chat_requests()] == ["hi", "again"]
        pressed = telegram.user_presses(USER, answer.message_id, button(answer, "👍"))
        assert "Saved" in await toast(telegram, pressed)
        audit = await rows(db, "SELECT action, target, detail FROM audit_log ORDER BY id")
        assert [(a["action"], a["target"], a["detail"]) for a in audit] == [
            ("ban", str(USER), {"reason": "spamming"}), ("unban", str(USER), None)]


async def test_limit_commands_are_for_admins_and_bad_input_gets_one_line(
        monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN)):
        await answered(telegram, "hi", USER, username="bob")
        for command in ("/ban 777", "/unban 888", "/tier 888 premium"):
            assert await say(telegram, command, USER, username="bob") == (
                "I don't know that command. See /help.")
        await say(telegram, "/usage", ADMIN)  # the admin is known to the bot too
        cases = {
            "/ban": "⚠️ Usage: /ban <Telegram id or @username> [reason]",
            "/ban bob!": "⚠️ Usage: /ban <Telegram id or @username> [reason]",
            "/ban @nobody": "⚠️ No user '@nobody' known to the bot (they must have written to it)",
            "/ban 777": "⚠️ Admins cannot be banned",
            "/unban": "⚠️ Usage: /unban <Telegram id or @username>",
            "/unban @bob": "⚠️ @bob is not banned",
            "/tier": "⚠️ Usage: /tier <Telegram id or @username> <tier> — tiers: standard, "
                     "premium",
            "/tier 888 gold": "⚠️ No tier 'gold' (tiers: standard, premium)",
        }
        for command, expected in cases.items():
            assert await say(telegram, command, ADMIN) == expected, command
        assert await rows(db, "SELECT * FROM audit_log") == []
        assert [r["banned_at"] for r in await rows(db, "SELECT banned_at FROM user_account")] \
            == [None, None]


async def test_arena_draws_among_models_with_quota_left(monkeypatch, tmp_path, telegram, models,
                                                        database_url, redis_prefix, db):
    # Alpha would be in nearly every battle by weight; its quota is used up by the first answer.
    overrides = {"alpha": {"quota": {"messages": 1, "per": "day"}, "arena_weight": 1000}}
    extra = [{"id": "gamma", "title": "Gamma", "model": "beta-served"}]
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides=overrides, catalogue_extra=extra):
        await answered(telegram, "q0", USER)
        assert (await say(telegram, "/arena", USER)).startswith("⚔️ Arena mode is on")
        telegram.user_sends("q1", chat_id=USER)
        [battle] = await rows(db, "SELECT model_a, model_b FROM battle", 1)
        assert {battle["model_a"], battle["model_b"]} == {"beta", "gamma"}
        assert [r["model"] for r in models.chat_requests()] == [
            "alpha-served", "beta-served", "beta-served"]
