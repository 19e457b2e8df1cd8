"""Conversation integrity: a failed, empty, older or repeated turn never changes what the model
is sent next, nor what the user sees."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

CHAT = 7001
SYSTEM = "You are Alpha."


async def ask(telegram, text: str, count: int, chat_id: int = CHAT):
    telegram.user_sends(text, chat_id=chat_id)
    messages = await telegram.wait_for_bot_messages(chat_id, count)
    return messages[-1]


def sent_history(models) -> list[str]:
    return [m["content"] for m in models.chat_requests()[-1]["messages"]]


async def head(db) -> int | None:
    [conversation] = await rows(db, "SELECT head_message_id FROM conversation")
    return conversation["head_message_id"]


# --- 1. a failed turn does not poison the conversation ----------------------------------------

async def test_a_question_rejected_as_too_long_does_not_block_the_next_turn(
    bot, telegram, models, db
):
    # The server's real context is smaller than the catalogue says (our estimate lets it
    # through; the server counts otherwise): it rejects the question as too long.
    models.models["alpha-served"] = 3800
    long_question = "w " * 1800
    error = await ask(telegram, long_question, 1)
    assert error.text.startswith("⚠️ This is too long for Alpha")
    assert labels(error) == ["🔄"]

    answer = await ask(telegram, "and now?", 2)
    assert answer.text == "[alpha-served] and now?"
    assert sent_history(models) == [SYSTEM, "and now?"]  # the failed question is not glued on
    answer = await ask(telegram, "and then?", 3)
    assert sent_history(models) == [SYSTEM, "and now?", "[alpha-served] and now?", "and then?"]
    statuses = await rows(db, "SELECT status, error_kind FROM message "
                              "WHERE role = 'assistant' ORDER BY id", 3)
    assert [(s["status"], s["error_kind"]) for s in statuses] == [
        ("error", "context_too_long"), ("complete", None), ("complete", None)]


async def test_retry_under_an_error_answers_the_stored_question_and_continues_from_it(
    bot, telegram, models, db
):
    models.fail_next(500)
    error = await ask(telegram, "first question", 1)
    assert labels(error) == ["🔄"]
    retry = telegram.user_presses(CHAT, error.message_id, button(error, "🔄"))
    assert "another answer" in await toast(telegram, retry)
    retried = (await telegram.wait_for_bot_messages(CHAT, 2))[-1]
    assert retried.text == "[alpha-served] first question"
    assert sent_history(models) == [SYSTEM, "first question"]
    await ask(telegram, "second question", 3)
    assert sent_history(models) == [SYSTEM, "first question", "[alpha-served] first question",
                                    "second question"]


async def test_a_failed_turn_in_the_middle_leaves_the_context_as_it_was(
    bot, telegram, models, db
):
    await ask(telegram, "one", 1)
    models.fail_next(503)
    await ask(telegram, "two", 2)
    await ask(telegram, "three", 3)
    assert sent_history(models) == [SYSTEM, "one", "[alpha-served] one", "three"]
    # The failed question is kept (nothing the user sent is lost), as a sibling of "three".
    questions = await rows(db, "SELECT content, parent_id FROM message "
                               "WHERE role = 'user' ORDER BY id", 3)
    assert questions[1]["content"] == "two"
    assert questions[1]["parent_id"] == questions[2]["parent_id"]


# --- 9. an empty answer ----------------------------------------------------------------------

async def test_an_empty_answer_gets_a_clear_line_and_retry_and_is_marked_empty(
    bot, telegram, models, db
):
    for n, empty in enumerate(("", "  \n\n  ")):
        models.set_reply("alpha-served", empty)
        notice = await ask(telegram, f"question {n}", n + 1)
        assert notice.text == "⚠️ Alpha returned an empty answer. Tap 🔄 to try again."
        assert labels(notice) == ["🔄"]
    statuses = await rows(db, "SELECT status, content FROM message "
                              "WHERE role = 'assistant' ORDER BY id", 2)
    assert [s["status"] for s in statuses] == ["empty", "empty"]

    models.set_reply("alpha-served", "now with words")
    notice = telegram.bot_messages(CHAT)[-1]
    await toast(telegram, telegram.user_presses(CHAT, notice.message_id, button(notice, "🔄")))
    retried = (await telegram.wait_for_bot_messages(CHAT, 3))[-1]
    assert retried.text == "now with words" and labels(retried)[0] == "👍"
    # Neither empty answer is in the context; the retried question is.
    assert sent_history(models) == [SYSTEM, "question 1"]
    await ask(telegram, "next", 4)
    assert sent_history(models) == [SYSTEM, "question 1", "now with words", "next"]


async def test_an_empty_answer_cannot_be_rated(bot, telegram, models, db):
    models.set_reply("alpha-served", "")
    notice = await ask(telegram, "q", 1)
    [empty] = await rows(db, "SELECT id FROM message WHERE role = 'assistant'", 1)
    forged = telegram.user_presses(CHAT, notice.message_id, f"ans:up:{empty['id']}", forged=True)
    assert await toast(telegram, forged) == "This button is no longer valid."
    assert await rows(db, "SELECT * FROM vote") == []


async def test_an_empty_arena_side_is_no_battle(bot, telegram, models, db):
    models.set_reply("beta-served", "")
    telegram.user_sends("/arena", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 1)
    telegram.user_sends("fight", chat_id=CHAT)
    messages = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(CHAT)) and any(
            "failed to answer" in x.text for x in m) and any(
            labels(x)[:1] == ["👍"] for x in m) and m)
    # Whichever side beta was: it is said to have failed, the other answers as a normal turn.
    assert any(x.text.startswith(("Model A failed", "Model B failed")) for x in messages)
    assert not any(x.text.strip() in ("Model A", "Model B") for x in messages)
    assert await rows(db, "SELECT * FROM battle") == []


# --- 7. older buttons do not rewrite the context ---------------------------------------------

async def test_regenerating_an_older_answer_keeps_the_conversation_at_the_latest_turn(
    bot, telegram, models, db
):
    first = await ask(telegram, "one", 1)
    await ask(telegram, "two", 2)
    models.set_reply("alpha-served", "one, again")
    await toast(telegram, telegram.user_presses(CHAT, first.message_id, button(first, "🔄")))
    regenerated = (await telegram.wait_for_bot_messages(CHAT, 3))[-1]
    assert regenerated.text == "one, again"
    assert sent_history(models) == [SYSTEM, "one"]  # answered in its own context
    models.set_reply("alpha-served", "ok")
    await ask(telegram, "three", 4)
    assert sent_history(models) == [SYSTEM, "one", "[alpha-served] one", "two",
                                    "[alpha-served] two", "three"]
    [row] = await rows(db, "SELECT origin FROM message WHERE content = 'one, again'")
    assert row["origin"] == "regenerated"  # stored: it is still preference data


async def test_switching_model_on_an_older_answer_keeps_the_latest_turn(
    bot, telegram, models, db
):
    first = await ask(telegram, "one", 1)
    await ask(telegram, "two", 2)
    await toast(telegram, telegram.user_presses(CHAT, first.message_id, button(first, "🔀")))
    menu = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(CHAT)[0]) and labels(m)[0] == "Beta" and m)
    await toast(telegram, telegram.user_presses(CHAT, menu.message_id, button(menu, "Beta")))
    await telegram.wait_for_bot_messages(CHAT, 3)
    await ask(telegram, "three", 4)
    assert sent_history(models)[-3:] == ["two", "[alpha-served] two", "three"]


async def test_retry_under_an_older_error_keeps_the_latest_turn(bot, telegram, models, db):
    models.fail_next(500)
    error = await ask(telegram, "one", 1)
    await ask(telegram, "two", 2)
    await toast(telegram, telegram.user_presses(CHAT, error.message_id, button(error, "🔄")))
    await telegram.wait_for_bot_messages(CHAT, 3)
    await ask(telegram, "three", 4)
    assert sent_history(models) == [SYSTEM, "two", "[alpha-served] two", "three"]


async def test_editing_an_older_answer_keeps_the_latest_turn(bot, telegram, models, db):
    first = await ask(telegram, "one", 1)
    await ask(telegram, "two", 2)
    await toast(telegram, telegram.user_presses(CHAT, first.message_id, button(first, "✏️")))
    await telegram.wait_for_bot_messages(CHAT, 3)
    telegram.user_sends("a better one", chat_id=CHAT)
    assert (await telegram.wait_for_bot_messages(CHAT, 4))[-1].text.startswith("✏️ Saved")
    await ask(telegram, "three", 5)
    assert sent_history(models)[-3:] == ["two", "[alpha-served] two", "three"]
    assert len(await rows(db, "SELECT * FROM answer_edit")) == 1


async def test_regenerating_the_latest_answer_still_continues_from_the_new_one(
    bot, telegram, models, db
):
    await ask(telegram, "one", 1)
    latest = await ask(telegram, "two", 2)
    models.set_reply("alpha-served", "two, again")
    await toast(telegram, telegram.user_presses(CHAT, latest.message_id, button(latest, "🔄")))
    await telegram.wait_for_bot_messages(CHAT, 3)
    models.set_reply("alpha-served", "ok")
    await ask(telegram, "three", 4)
    assert sent_history(models)[-3:] == ["two", "two, again", "three"]


async def battle(telegram, question: str, count: int):
    telegram.user_sends(question, chat_id=CHAT)
    return await telegram.wait_for(
        lambda: (m := telegram.bot_messages(CHAT)) and len(m) == count
        and labels(m[-1])[:1] == ["🅰️ A is better"] and m[-1])


async def test_voting_on_an_older_battle_keeps_the_latest_turn(bot, telegram, models, db):
    telegram.user_sends("/arena", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 1)
    old = await battle(telegram, "first fight", 3)
    await battle(telegram, "second fight", 5)
    latest_head = await head(db)
    vote = telegram.user_presses(CHAT, old.message_id, button(old, "🅱️"))
    assert (await toast(telegram, vote)).startswith("Thanks!")
    [judged] = await rows(db, "SELECT winner FROM battle WHERE winner IS NOT NULL", 1)
    assert judged["winner"] == "b"  # the judgement is stored…
    assert await head(db) == latest_head  # …without moving the conversation
    telegram.user_sends("/arena", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 6)
    await ask(telegram, "third", 7)
    history = sent_history(models)
    assert history[1] == "first fight" and history[3] == "second fight"
    assert history[-1] == "third"


async def test_voting_on_the_latest_battle_continues_from_the_winner(bot, telegram, models, db):
    telegram.user_sends("/arena", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 1)
    latest = await battle(telegram, "fight", 3)
    await toast(telegram, telegram.user_presses(CHAT, latest.message_id, button(latest, "🅱️")))
    [fought] = await rows(db, "SELECT answer_b_id FROM battle WHERE winner = 'b'", 1)
    assert await head(db) == fought["answer_b_id"]


# --- 12. one press, one model call -----------------------------------------------------------

async def test_a_double_tap_on_regenerate_starts_one_regeneration(bot, telegram, models):
    answer = await ask(telegram, "tell me", 1)
    models.chunk_delay = 0.05
    data = button(answer, "🔄")
    first = telegram.user_presses(CHAT, answer.message_id, data)
    second = telegram.user_presses(CHAT, answer.message_id, data)
    toasts = sorted([await toast(telegram, first), await toast(telegram, second)])
    assert toasts == ["🔄 Already writing another answer", "🔄 Writing another answer…"]
    await telegram.wait_for_bot_messages(CHAT, 2)
    await asyncio.sleep(0.5)
    assert len(models.chat_requests()) == 2 and len(telegram.bot_messages(CHAT)) == 2


async def test_a_double_tap_on_a_model_to_regenerate_with_starts_one_regeneration(
    bot, telegram, models
):
    answer = await ask(telegram, "tell me", 1)
    await toast(telegram, telegram.user_presses(CHAT, answer.message_id, button(answer, "🔀")))
    menu = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(CHAT)[0]) and labels(m)[0] == "Beta" and m)
    data = button(menu, "Beta")
    first = telegram.user_presses(CHAT, menu.message_id, data)
    second = telegram.user_presses(CHAT, menu.message_id, data, forged=True)  # old keyboard
    toasts = sorted([await toast(telegram, first), await toast(telegram, second)])
    assert toasts == ["🔀 Asking Beta…", "🔄 Already writing another answer"]
    await telegram.wait_for_bot_messages(CHAT, 2)
    await asyncio.sleep(0.5)
    assert [r["model"] for r in models.chat_requests()] == ["alpha-served", "beta-served"]


async def test_turns_work_the_same_without_redis(
    monkeypatch, tmp_path, telegram, models, database_url
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, None):
        models.fail_next(500)
        await ask(telegram, "lost", 1)
        await ask(telegram, "found", 2)
        assert sent_history(models) == [SYSTEM, "found"]


async def test_stopping_before_any_text_is_no_answer_and_does_not_glue_the_next_turn(
    bot, telegram, models, db
):
    models.first_token_delay = 1.0
    telegram.user_sends("never mind", chat_id=CHAT)
    await telegram.wait_for(lambda: telegram.drafts(CHAT))  # "Thinking…", with a stop button
    assert telegram.drafts(CHAT)[0].text == ""  # a slow first token: the placeholder
    telegram.user_stops_generation(CHAT, telegram.drafts(CHAT)[0].draft_id)
    [stopped] = await telegram.wait_for_bot_messages(CHAT, 1)
    assert stopped.text == "⏹ Stopped." and labels(stopped) == ["🔄"]
    models.first_token_delay = 0
    await ask(telegram, "something else", 2)
    assert sent_history(models) == [SYSTEM, "something else"]


async def test_a_user_who_blocks_the_bot_mid_answer_leaves_it_undelivered(
    bot, telegram, models, db
):
    models.set_reply("alpha-served", " ".join(f"w{i}" for i in range(30)))
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.03
    telegram.user_sends("hello", chat_id=CHAT)
    await telegram.wait_for(lambda: len(telegram.drafts(CHAT)) >= 2)
    telegram.user_blocks_bot(CHAT)
    [row] = await rows(db, "SELECT status FROM message WHERE role = 'assistant' "
                           "AND status = 'undelivered'", 1)
    assert row["status"] == "undelivered"
    assert await head(db) is None  # the conversation is where it was before "hello"


async def test_a_group_arena_side_with_only_whitespace_leaves_no_stub(bot, telegram, models, db):
    group = -100701
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.3  # frames are shown while the whitespace streams
    models.set_reply("alpha-served", ["  ", "\n", "  "])
    models.set_reply("beta-served", ["  ", "\n", "  "])
    telegram.user_sends("/arena", chat_id=group, user_id=31, chat_type="group")
    await telegram.wait_for_bot_messages(group, 1)
    telegram.user_sends("@chatmux_test_bot ping", chat_id=group, user_id=31, chat_type="group")
    await telegram.wait_for(
        lambda: any(m.text.startswith("⚠️ Beta returned an empty answer")
                    or m.text.startswith("⚠️ Alpha returned an empty answer")
                    for m in telegram.bot_messages(group)), timeout=15)
    texts = [m.text for m in telegram.bot_messages(group)]
    assert not any(t.strip() in ("Model A", "Model B") for t in texts), texts


async def test_a_turn_that_breaks_off_unexpectedly_does_not_glue_the_next_one(
    monkeypatch, bot, telegram, models, db
):
    """Whatever goes wrong inside a turn (here: a bug simulated in building the request, and
    one in laying out the final message), the question does not stay the conversation's tip."""
    import bot.answering
    import bot.streaming.views

    real_build, real_layout = bot.answering.build_request, bot.streaming.views.layout

    def broken_once(target, name, real):
        def broken(*args, **kwargs):
            monkeypatch.setattr(target, name, real)
            raise RuntimeError("a bug")
        return broken

    for target, name, real in ((bot.answering, "build_request", real_build),
                               (bot.streaming.views, "layout", real_layout)):
        monkeypatch.setattr(target, name, broken_once(target, name, real))
        count = len(telegram.bot_messages(CHAT))
        telegram.user_sends(f"breaks in {name}", chat_id=CHAT)
        [oops] = (await telegram.wait_for_bot_messages(CHAT, count + 1))[count:]
        assert oops.text.startswith("⚠️ Something went wrong")
    await ask(telegram, "and now?", 3)
    assert sent_history(models) == [SYSTEM, "and now?"]
    statuses = await rows(db, "SELECT status FROM message WHERE role = 'assistant' ORDER BY id")
    assert [s["status"] for s in statuses] == ["undelivered", "complete"]
