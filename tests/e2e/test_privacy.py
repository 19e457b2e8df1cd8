"""/privacy through `chatmux run`: consent buttons (DATA_CONSENT opt_out and opt_in), "forget
me" leaving no trace in a `pg_dump` of the database or in the bot's Redis keys, presses by
someone else, twice, or after forgetting, and forgetting while an answer streams."""

from __future__ import annotations

import asyncio
import logging

from storage.db import create_engine, create_sessionmaker
from storage.leaderboard import Battle as BtBattle
from storage.leaderboard import leaderboard
from storage.repositories.feedback import FeedbackRepository
from tests.conftest import REDIS_URL
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot
from tests.privacy_checks import pg_dump_text, redis_text, traces

ALICE = 8123456789  # her private chat has her id
ALICE_NAME, ALICE_USERNAME = "Alizqia", "alice_zq_priv"
BOB = 8987654321
GROUP = -1008123400
WORD = "zebrafrost"  # only Alice writes it


def alice(**extra):
    return {"first_name": ALICE_NAME, "username": ALICE_USERNAME, **extra}


async def say(telegram, text: str, chat_id: int = ALICE, **who):
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id, **(who or alice()))
    return (await telegram.wait_for_bot_messages(chat_id, before + 1))[before]


async def answer_to(telegram, text: str, chat_id: int = ALICE, **who):
    """Ask; the final answer (the one with buttons)."""
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id, **(who or alice()))
    return await telegram.wait_for(
        lambda: (m := telegram.bot_messages(chat_id)[before:]) and labels(m[-1]) and m[-1])


def current(telegram, chat_id: int, message_id: int):
    return next(m for m in telegram.bot_messages(chat_id) if m.message_id == message_id)


async def press(telegram, chat_id: int, message, prefix: str, **who) -> str:
    return await toast(telegram, telegram.user_presses(chat_id, message.message_id,
                                                       button(message, prefix), **who))


async def consent_of(db, telegram_id: int):
    found = await rows(db, "SELECT data_consent FROM user_account WHERE telegram_id = :id",
                       id=telegram_id)
    return [r["data_consent"] for r in found]


async def test_start_mentions_privacy_and_consent_buttons_work(bot, telegram, db):
    greeting = await say(telegram, "/start")
    assert greeting.text.endswith("What I keep and how to delete it: /privacy")
    menu = await say(telegram, "/privacy")
    assert "Who can export: only the bot's admins" in menu.text
    assert menu.text.endswith("datasets: included (the default here; you have not chosen)")
    assert labels(menu) == ["🚫 Keep me out of datasets", "🗑 Forget me"]

    assert (await press(telegram, ALICE, menu, "🚫")).startswith("🚫 Done: nothing of yours")
    assert await consent_of(db, ALICE) == [False]
    menu = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.endswith(
            "datasets: excluded") and m)
    assert labels(menu) == ["✅ Include me in datasets", "🗑 Forget me"]
    # She keeps chatting; her answers are stored as before.
    await answer_to(telegram, "still here?")
    assert len(await rows(db, "SELECT id FROM message WHERE role = 'assistant'", 1)) == 1

    assert (await press(telegram, ALICE, menu, "✅")).startswith("✅ Done: your messages")
    assert await consent_of(db, ALICE) == [True]
    # "Forget me", then Cancel: back to the menu, nothing deleted.
    await press(telegram, ALICE, current(telegram, ALICE, menu.message_id), "🗑")
    confirm = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith("🗑 Delete")
        and m)
    assert labels(confirm) == ["Yes, delete everything", "Cancel"]
    await press(telegram, ALICE, confirm, "Cancel")
    await telegram.wait_for(
        lambda: current(telegram, ALICE, menu.message_id).text.endswith("datasets: included"))
    assert await consent_of(db, ALICE) == [True]


async def test_russian_menu_and_the_opt_in_default(monkeypatch, tmp_path, telegram, models,
                                                    database_url, redis_prefix, db):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, DATA_CONSENT="opt_in"):
        menu = await say(telegram, "/privacy", **alice(language_code="ru"))
        assert menu.text.startswith("🔒 Что я храню о вас")
        assert menu.text.endswith("в датасетах: исключены (по умолчанию; вы не выбирали)")
        assert labels(menu) == ["✅ Включать меня в датасеты", "🗑 Забудь меня"]
        assert (await press(telegram, ALICE, menu, "✅", language_code="ru")).startswith(
            "✅ Готово")
        assert await consent_of(db, ALICE) == [True]


async def test_someone_elses_menu_in_a_group_changes_nothing(bot, telegram, db):
    menu = await say(telegram, "/privacy", chat_id=GROUP, **alice(user_id=ALICE,
                                                                 chat_type="supergroup"))
    for prefix in ("🚫", "🗑"):
        assert await press(telegram, GROUP, menu, prefix, user_id=BOB) == (
            "This is someone else's privacy menu. Send /privacy for your own.")
    assert current(telegram, GROUP, menu.message_id).text == menu.text
    assert await consent_of(db, ALICE) == [None]
    assert await consent_of(db, BOB) == []  # the presser was not stored either


async def alice_chats_and_judges(telegram, db):
    """Alice asks (her word in it), likes the answer and starts improving it (✏️: edit mode,
    kept in Redis); her rate-limit bucket is in Redis too."""
    answer = await answer_to(telegram, f"what is a {WORD}?")
    assert WORD in answer.text  # the model's answer quotes her
    assert await press(telegram, ALICE, answer, "👍")
    await rows(db, "SELECT id FROM vote", 1)
    await press(telegram, ALICE, current(telegram, ALICE, answer.message_id), "✏️")


async def forget(telegram, menu) -> None:
    await press(telegram, ALICE, menu, "🗑")
    confirm = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith("🗑 Delete")
        and m)
    assert await press(telegram, ALICE, confirm, "Yes") == (
        "✅ Everything I stored about you has been deleted. If you write again, you start "
        "afresh.")
    gone = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith(
            "✅ Everything") and m)
    assert labels(gone) == []


async def no_trace_left(database_url: str, redis_prefix: str) -> None:
    needles = (ALICE, ALICE_USERNAME, ALICE_NAME, WORD)
    assert traces(await pg_dump_text(database_url), *needles) == []
    # A stopped answer's conversation lock lives until its turn has ended.
    for _ in range(100):  # up to 10 s
        found = traces(await redis_text(REDIS_URL, redis_prefix), *needles)
        if not found:
            break
        await asyncio.sleep(0.1)
    assert found == []


async def test_forget_me_leaves_no_trace_and_stale_presses_recreate_nothing(
        monkeypatch, tmp_path, telegram, models, db, database_url, redis_prefix):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, RATE_LIMIT_BURST="50"):
        await forget_me_leaves_no_trace(telegram, db, database_url, redis_prefix)


async def forget_me_leaves_no_trace(telegram, db, database_url, redis_prefix):
    telegram.user_sends("/arena", chat_id=BOB, user_id=BOB, first_name="Bob")
    await telegram.wait_for_bot_messages(BOB, 1)
    bob_b = await answer_to(telegram, "which tea?", chat_id=BOB, user_id=BOB, first_name="Bob")
    await press(telegram, BOB, bob_b, "🅰️", user_id=BOB)
    old_menu = await say(telegram, "/privacy")
    menu = await say(telegram, "/privacy")
    await alice_chats_and_judges(telegram, db)
    before = await pg_dump_text(database_url)
    assert traces(before, ALICE, ALICE_USERNAME, ALICE_NAME, WORD)
    kept = await redis_text(REDIS_URL, redis_prefix)
    assert traces(kept, f"fsm:{telegram.bot_id}:{ALICE}:{ALICE}:")  # ✏️ edit mode
    assert traces(kept, f"bucket:ask:{ALICE}")

    await forget(telegram, menu)
    await no_trace_left(database_url, redis_prefix)
    [entry] = await rows(db, "SELECT actor_id, target, detail FROM audit_log "
                             "WHERE action = 'forget'")
    assert entry["actor_id"] is None and entry["target"] is None
    assert entry["detail"]["votes"] == 1 and entry["detail"]["messages_deleted"] >= 2

    # Old buttons after forgetting: a toast, and no half-made user.
    assert await press(telegram, ALICE, old_menu, "🚫") == (
        "Already deleted: nothing of yours is stored.")
    again = telegram.user_presses(ALICE, menu.message_id, "priv:8123456789:yes", forged=True)
    assert await toast(telegram, again) == "Already deleted: nothing of yours is stored."
    assert await consent_of(db, ALICE) == []
    assert len(await rows(db, "SELECT id FROM audit_log WHERE action = 'forget'")) == 1

    # The leaderboard still computes from Bob's battle.
    engine = create_engine(database_url)
    try:
        feedback = FeedbackRepository(create_sessionmaker(engine))
        battles = [BtBattle(*b) async for b in feedback.judged_battles()]
    finally:
        await engine.dispose()
    assert sorted(r.battles for r in leaderboard(battles, rounds=10)) == [1, 1]

    # Writing again is a new start: a fresh row, nothing from before.
    await answer_to(telegram, "hello again")
    [row] = await rows(db, "SELECT data_consent, username FROM user_account "
                           "WHERE telegram_id = :id", id=ALICE)
    assert row["data_consent"] is None and row["username"] == ALICE_USERNAME
    assert [r["content"] for r in await rows(db, "SELECT content FROM message WHERE "
                                                 "role = 'user' ORDER BY id")] == [
        "which tea?", "hello again"]


async def test_forgetting_while_an_answer_streams_ends_it_cleanly(
        bot, telegram, models, db, database_url, redis_prefix, caplog):
    caplog.set_level(logging.WARNING)
    menu = await say(telegram, "/privacy")
    await press(telegram, ALICE, menu, "🗑")
    confirm = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith("🗑 Delete")
        and m)
    models.set_reply("alpha-served", " ".join([WORD] + [f"w{i}" for i in range(60)]))
    models.chunk_delay = 0.1  # about three seconds of streaming
    telegram.user_sends(f"tell me about {WORD}", chat_id=ALICE, **alice())
    await telegram.wait_for(lambda: any(WORD in d.text
                                        for d in telegram.drafts(ALICE)))
    assert (await press(telegram, ALICE, confirm, "Yes")).startswith("✅ Everything")
    await no_trace_left(database_url, redis_prefix)
    assert await rows(db, "SELECT id FROM message") == []
    # The answer ended as stopped, early (the model was not read to its end), shown without
    # buttons (its question was gone when it ended: nothing to judge, nothing stored), with no
    # error and no stack trace anywhere.
    sent = telegram.bot_messages(ALICE)
    [answer] = await telegram.wait_for(
        lambda: [m for m in telegram.bot_messages(ALICE) if (m.text or "").startswith(WORD)])
    assert answer.text.endswith("⏹ Stopped.") and "w59" not in answer.text
    assert labels(answer) == []
    assert not any("went wrong" in (m.text or "") for m in sent)
    print("LOGS", [(r.levelno, r.getMessage()) for r in caplog.records])
    print("SENT", [(m.text, labels(m)) for m in sent])
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert await consent_of(db, ALICE) == []


async def test_forgetting_drops_queued_questions(bot, telegram, models, db, database_url,
                                                 redis_prefix):
    menu = await say(telegram, "/privacy")
    await press(telegram, ALICE, menu, "🗑")
    confirm = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith("🗑 Delete")
        and m)
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(60)))
    models.chunk_delay = 0.1
    telegram.user_sends("first", chat_id=ALICE, **alice())
    await telegram.wait_for(lambda: telegram.drafts(ALICE))
    queued = [telegram.user_sends(f"queued {WORD} {n}", chat_id=ALICE, **alice())
              for n in range(3)]
    await telegram.wait_for(lambda: all(
        telegram.reactions(ALICE, u["message"]["message_id"]) == ["👀"] for u in queued))
    await press(telegram, ALICE, confirm, "Yes")
    await no_trace_left(database_url, redis_prefix)
    await asyncio.sleep(1.0)  # a queued question would be answered by now
    assert [r["model"] for r in models.chat_requests()] == ["alpha-served"]
    assert await rows(db, "SELECT id FROM message") == []


async def test_yes_pressed_twice_at_once_forgets_once(bot, telegram, db, database_url,
                                                       redis_prefix):
    await answer_to(telegram, f"a {WORD} to forget")
    menu = await say(telegram, "/privacy")
    await press(telegram, ALICE, menu, "🗑")
    confirm = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.startswith("🗑 Delete")
        and m)
    yes = button(confirm, "Yes")
    presses = [telegram.user_presses(ALICE, confirm.message_id, yes) for _ in range(2)]
    toasts = sorted([await toast(telegram, q) for q in presses])
    assert toasts == ["Already deleted: nothing of yours is stored.",
                      "✅ Everything I stored about you has been deleted. If you write again, "
                      "you start afresh."]
    assert len(await rows(db, "SELECT id FROM audit_log WHERE action = 'forget'")) == 1
    await no_trace_left(database_url, redis_prefix)


async def test_forgetting_in_a_group_keeps_the_others_conversation(bot, telegram, models, db,
                                                                    database_url,
                                                                    redis_prefix):
    """Alice asks in a group, Bob asks below her turn, Alice asks once more at the end. After
    she is forgotten, her first turn is a tombstone (Bob's hangs below it), her last one is
    gone, and Bob's next question follows his answer, with nothing of hers in its history."""
    def in_group(text: str, user_id: int, **who) -> None:
        telegram.user_sends(f"@chatmux_test_bot {text}", chat_id=GROUP, user_id=user_id,
                            chat_type="supergroup", **who)

    async def answers(count: int) -> None:
        await rows(db, "SELECT id FROM message m WHERE role = 'assistant' AND EXISTS ("
                       "SELECT 1 FROM message_delivery d WHERE d.message_id = m.id)", count)

    in_group(f"first {WORD}", ALICE, **alice())
    await answers(1)
    in_group("tea please", BOB, first_name="Bob")
    await answers(2)
    in_group(f"last {WORD}", ALICE, **alice())
    await answers(3)
    menu = await say(telegram, "/privacy")  # in her private chat
    await forget(telegram, menu)
    await no_trace_left(database_url, redis_prefix)
    left = await rows(db, "SELECT role, origin, content, author_id FROM message ORDER BY id")
    assert [(r["role"], r["origin"], r["content"]) for r in left] == [
        ("user", "forgotten", ""), ("assistant", "forgotten", ""),
        ("user", "original", "tea please"), ("assistant", "original", "[alpha-served] tea please")]
    in_group("and milk?", BOB, first_name="Bob")
    await answers(2)  # Bob's two (the tombstone was delivered nowhere any more)
    assert len(models.chat_requests()) == 4
    history = [m["content"] for m in models.chat_requests()[-1]["messages"]
               if m["role"] != "system"]
    assert history == ["tea please", "[alpha-served] tea please", "and milk?"]


async def kto_dump(database_url: str, tmp_path, name: str) -> str:
    """A `kto` dump of the likes (every model's answers exportable: the fakes' models are in
    no catalogue), as one text to search."""
    from storage.exports import ExportOptions, export

    (tmp_path / name).mkdir()
    engine = create_engine(database_url)
    try:
        result = await export(create_sessionmaker(engine),
                              ExportOptions(format="kto", include_restricted=True),
                              tmp_path / name / "likes.jsonl")
    finally:
        await engine.dispose()
    return result.path.read_text() if result.rows else ""


async def test_opting_out_in_privacy_takes_her_rows_out_of_dumps_and_opting_in_back(
        bot, telegram, db, database_url, tmp_path):
    """The menu's buttons decide what the exporter writes, for what she wrote before too."""
    bob_answer = await answer_to(telegram, "which tea is best?", chat_id=BOB, user_id=BOB,
                                 first_name="Bob")
    await press(telegram, BOB, bob_answer, "👍", user_id=BOB)
    answer = await answer_to(telegram, f"what is a {WORD}?")
    await press(telegram, ALICE, answer, "👍")
    await rows(db, "SELECT id FROM vote", 2)
    first = await kto_dump(database_url, tmp_path, "before")
    assert WORD in first and "which tea is best?" in first

    menu = await say(telegram, "/privacy")
    await press(telegram, ALICE, menu, "🚫")
    assert await consent_of(db, ALICE) == [False]
    out = await kto_dump(database_url, tmp_path, "out")
    assert WORD not in out and "which tea is best?" in out

    menu = await telegram.wait_for(
        lambda: (m := current(telegram, ALICE, menu.message_id)).text.endswith(
            "datasets: excluded") and m)
    await press(telegram, ALICE, menu, "✅")
    assert await consent_of(db, ALICE) == [True]
    assert WORD in await kto_dump(database_url, tmp_path, "back")
