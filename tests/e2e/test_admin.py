"""Admins add and retire models from the chat while the bot runs."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.e2e.helpers import labels, rows
from tests.fakes.openai_api import FakeModelServer
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import running_bot

ADMIN = 777
USER = 888
ADMIN_COMMANDS = ["/addmodel x url=http://127.0.0.1:1/v1 model=y", "/rmmodel alpha",
                  "/enable alpha", "/disable alpha", "/models"]


@pytest.fixture
async def admin_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN)) as settings:
        yield settings


@pytest.fixture
async def gamma():
    async with FakeModelServer({"gamma-served": 4096}) as server:
        yield server


async def say(telegram, text: str, chat_id: int = ADMIN) -> str:
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    messages = await telegram.wait_for_bot_messages(chat_id, before + 1, timeout=15)
    return messages[-1].text


async def test_admin_commands_do_not_exist_for_others(admin_bot, telegram, db):
    for command in ADMIN_COMMANDS:
        assert await say(telegram, command, USER) == "I don't know that command. See /help."
    assert await rows(db, "SELECT * FROM model_override") == []
    assert await rows(db, "SELECT * FROM audit_log") == []
    assert (await say(telegram, "/model", USER)).startswith("Current model: Alpha")


async def test_admin_menu_is_scoped_to_admins(admin_bot, telegram):
    menus = telegram.commands()
    admin_menu = next(v for k, v in menus.items() if str(ADMIN) in k)
    assert {"addmodel", "models"} <= {c["command"] for c in admin_menu}
    for key, commands in menus.items():
        if str(ADMIN) not in key:
            assert "addmodel" not in {c["command"] for c in commands}


async def test_addmodel_probes_then_every_process_sees_it(
    admin_bot, monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, gamma, db
):
    # A second bot process sharing the database and Redis (with its own Telegram front).
    second_front = FakeTelegram(token="654321:SECOND")
    await second_front.start()
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(second_front.stop)
        with monkeypatch.context() as patch:
            await stack.enter_async_context(running_bot(
                patch, second_dir, second_front, models, database_url, redis_prefix,
                ADMIN_IDS=str(ADMIN),
            ))
        reply = await say(telegram, f'/addmodel gamma url={gamma.base_url} model=gamma-served '
                                    'title="Gamma 7B"')
        assert reply.startswith("✅ Gamma 7B (gamma) added")
        loop = asyncio.get_running_loop()
        added_at = loop.time()
        [override] = await rows(db, "SELECT * FROM model_override")
        assert override["spec"]["base_url"] == gamma.base_url
        [audit] = await rows(db, "SELECT * FROM audit_log")
        assert audit["action"] == "addmodel" and audit["target"] == "gamma"

        # The other process offers it within 2 s, without a restart.
        asked = 0
        while True:
            asked += 1
            second_front.user_sends("/model", chat_id=USER)
            menu = (await second_front.wait_for_bot_messages(USER, asked))[-1]
            if "Gamma 7B" in labels(menu):
                break
            assert loop.time() - added_at < 2.0, labels(menu)
            await asyncio.sleep(0.1)
        # And answers there.
        data = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                    if b["text"].endswith("Gamma 7B"))
        query = second_front.user_presses(USER, menu.message_id, data)
        await second_front.wait_for(lambda: query in second_front.callback_answers())
        second_front.user_sends("hi gamma", chat_id=USER)
        answer = await second_front.wait_for(
            lambda: (m := second_front.bot_messages(USER)) and m[-1].text.startswith("[")
            and m[-1]
        )
        assert answer.text == "[gamma-served] hi gamma"


async def test_addmodel_refuses_unreachable_urls_and_unserved_names(admin_bot, telegram, gamma,
                                                                    db):
    reply = await say(telegram, "/addmodel ghost url=http://127.0.0.1:9/v1 model=x")
    assert "did not answer /models" in reply and "nothing added" in reply
    reply = await say(telegram, f"/addmodel ghost url={gamma.base_url} model=not-there")
    assert "does not serve 'not-there'" in reply and "gamma-served" in reply
    reply = await say(telegram, "/addmodel")
    assert reply.startswith("⚠️ the model id is missing\nUsage: /addmodel")
    reply = await say(telegram, "/addmodel ok url=http://x")
    assert reply.startswith("⚠️ url= and model= are required")
    reply = await say(telegram, "/addmodel ok url=http://x model=y colour=blue")
    assert reply.startswith("⚠️ unknown option colour=")
    for odd in ("²", "٣", "1" * 5000):  # digits to str.isdigit(), not numbers to int()
        reply = await say(telegram, f"/addmodel ok url=http://x/v1 model=y context={odd}")
        assert reply.startswith("⚠️ context= must be a number of tokens"), reply
        reply = await say(telegram, f"/addmodel ok hf=org/x draft=org/d k={odd}")
        assert reply.startswith("⚠️ k= must be a whole number"), reply
    reply = await say(telegram, "/export dpo ²")
    assert reply.startswith("⚠️ Usage: /export"), reply
    assert await rows(db, "SELECT * FROM model_override") == []


async def test_disable_moves_users_to_the_default_with_a_note(admin_bot, telegram, db):
    telegram.user_sends("/model", chat_id=USER)
    [menu] = await telegram.wait_for_bot_messages(USER, 1)
    beta = next(b["callback_data"] for r in menu.reply_markup["inline_keyboard"] for b in r
                if b["text"] == "Beta")
    query = telegram.user_presses(USER, menu.message_id, beta)
    await telegram.wait_for(lambda: query in telegram.callback_answers())

    reply = await say(telegram, "/disable beta")
    assert reply == "✅ Beta (beta) disabled; 1 user(s) moved to the default model"
    note = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(USER)) and "no longer available" in m[-1].text
        and m[-1]
    )
    assert note.text.startswith("Beta is no longer available, so Alpha answers you now")
    telegram.user_sends("/model", chat_id=USER)
    menu = (await telegram.wait_for_bot_messages(USER, 3))[-1]
    assert labels(menu) == ["✓ Alpha"]
    assert (await say(telegram, "/enable beta")).startswith("✅ Beta (beta) enabled")
    assert (await say(telegram, "/rmmodel beta")).startswith("✅ Beta (beta) removed")
    assert "beta" not in await say(telegram, "/models")
    assert (await say(telegram, "/rmmodel alpha")).startswith("⚠️ that is the last enabled")
    actions = [r["action"] for r in await rows(db, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["disable", "enable", "rmmodel"]


async def test_models_report_lists_every_model(admin_bot, telegram, models):
    report = await say(telegram, "/models")
    assert "• alpha — Alpha [enabled] openai, serves alpha-served" in report
    assert "• beta — Beta [enabled]" in report
    assert f"{models.base_url}: idle (no requests yet)" in report
    await say(telegram, "hello")  # alpha answers once: now it has numbers
    report = await say(telegram, "/models")
    alpha = report.splitlines()[1]
    assert alpha.startswith(f"    {models.base_url}: ready, in flight 0, TTFT p50 0.")
    assert "tok/s" in alpha


async def test_adding_a_model_while_20_users_stream_breaks_no_stream(admin_bot, telegram, models,
                                                                     gamma):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(60)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.02
    users = range(9000, 9020)
    for user in users:
        telegram.user_sends("stream please", chat_id=user)
    await telegram.wait_for(lambda: len(models.chat_requests()) >= 10, timeout=10)
    reply = await say(telegram, f"/addmodel gamma url={gamma.base_url} model=gamma-served")
    assert reply.startswith("✅")
    for user in users:
        [answer] = await telegram.wait_for_bot_messages(user, 1, timeout=30)
        assert answer.text.endswith("w59"), answer.text


async def test_addmodel_export_policy_is_stored_and_outlives_removal(admin_bot, telegram, gamma,
                                                                     db, database_url):
    from storage.db import create_engine, create_sessionmaker
    from storage.exports import ExportOptions, ModelPolicy
    from storage.exports.policy import RESTRICTED, load_policy

    reply = await say(telegram, f"/addmodel gamma url={gamma.base_url} model=gamma-served "
                                "exportable=maybe")
    assert reply.startswith("⚠️ exportable= must be 0 or 1")
    reply = await say(telegram, f"/addmodel gamma url={gamma.base_url} model=gamma-served "
                                'exportable=0 data_license="Gamma API terms"')
    assert reply.startswith("✅ gamma (gamma) added"), reply
    [override] = await rows(db, "SELECT * FROM model_override")
    assert (override["spec"]["exportable"], override["spec"]["data_license"]) == (
        False, "Gamma API terms")
    reply = await say(telegram, "/rmmodel gamma")
    assert reply.startswith("✅ gamma (gamma) removed"), reply
    [override] = await rows(db, "SELECT * FROM model_override")
    assert override["removed"] and override["spec"]["exportable"] is False

    # What a dump reads: the stored entry wins over the file (which says nothing of gamma).
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            policy = await load_policy(await session.connection(), ExportOptions(
                format="arena", model_policies={"alpha": ModelPolicy()}))
    finally:
        await engine.dispose()
    assert policy.model_mark("gamma") & RESTRICTED
    assert policy.licences(policy.model_mark("gamma")) == ["Gamma API terms"]
    assert not policy.model_mark("alpha") & RESTRICTED
