"""Messages sent while an answer is being written are queued and answered in order; edited
questions are asked as edited (queued) or answered again as a sibling branch (answered)."""

from __future__ import annotations

import asyncio

import pytest

from bot import queueing
from tests.e2e.helpers import button, labels, rows, toast
from tests.harness import running_bot

PRIVATE = 4242
GROUP = -100777
BOT = "@chatmux_test_bot"


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Queued notes come after 0.3 s instead of 1 s (held answers must end within the
    catalogue's 3 s first-token timeout)."""
    monkeypatch.setattr(queueing, "QUICK_WAIT", 0.3)


def contents(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"]]


def notes(telegram, chat_id: int) -> list[str]:
    return [m.text for m in telegram.bot_messages(chat_id) if m.text.startswith("⏳")]


async def test_messages_sent_while_answering_are_answered_in_order_one_at_a_time(
    bot, telegram, models, db
):
    models.hold()  # the first answer is being written until the test says
    first = telegram.user_sends("first", chat_id=PRIVATE)["message"]["message_id"]
    await telegram.wait_for(lambda: models.held == 1)
    second = telegram.user_sends("second", chat_id=PRIVATE)["message"]["message_id"]
    third = telegram.user_sends("third", chat_id=PRIVATE)["message"]["message_id"]
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 2)
    # Each queued message shows that it is queued, and where.
    assert telegram.reactions(PRIVATE, second) == ["👀"]
    assert telegram.reactions(PRIVATE, third) == ["👀"]
    assert telegram.reactions(PRIVATE, first) == []
    assert notes(telegram, PRIVATE) == [
        "⏳ Queued, place 1 in line: I'll answer it right after the answers before it.",
        "⏳ Queued, place 2 in line: I'll answer it right after the answers before it.",
    ]
    placed = {m.reply_to_message_id for m in telegram.bot_messages(PRIVATE)}
    assert placed == {second, third}
    assert len(models.chat_requests()) == 1  # one stream at a time

    models.release()
    await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 5)
    answers = [m.text for m in telegram.bot_messages(PRIVATE) if not m.text.startswith("⏳")]
    assert answers == ["[alpha-served] first", "[alpha-served] second", "[alpha-served] third"]
    # Each question was its own turn, with the answers before it as history.
    requests = models.chat_requests()
    assert [contents(r) for r in requests] == [
        ["You are Alpha.", "first"],
        ["You are Alpha.", "first", "[alpha-served] first", "second"],
        ["You are Alpha.", "first", "[alpha-served] first", "second", "[alpha-served] second",
         "third"],
    ]
    stored = await rows(db, "SELECT id, parent_id, role, content FROM message ORDER BY id", 6)
    by_content = {m["content"]: m for m in stored}
    assert by_content["second"]["parent_id"] == by_content["[alpha-served] first"]["id"]
    assert by_content["third"]["parent_id"] == by_content["[alpha-served] second"]["id"]
    # The last turn is settled (after its delivery): the conversation continues from it.
    assert await rows(db, "SELECT id FROM conversation WHERE head_message_id = :id", 1,
                      id=by_content["[alpha-served] third"]["id"])


async def test_a_question_taken_up_while_it_waited_is_not_called_queued(
    bot, telegram, models, db, monkeypatch
):
    """The answer before it ends during the question's short wait, and the answering process
    goes on to it: the user reads its answer, not "Queued, place 1" about it."""
    monkeypatch.setattr(queueing, "QUICK_WAIT", 1.0)
    models.hold()
    telegram.user_sends("first", chat_id=PRIVATE)
    await telegram.wait_for(lambda: models.held == 1)
    second = telegram.user_sends("second", chat_id=PRIVATE)["message"]["message_id"]
    await rows(db, "SELECT id FROM message WHERE role = 'user'", 2)
    models.release()
    models.hold()  # "second" is taken up by the first answer's process and held there
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2 and models.held == 1)
    await asyncio.sleep(1.5)  # past the question's own wait for the lock (nothing to wait on)
    assert notes(telegram, PRIVATE) == [] and telegram.reactions(PRIVATE, second) == []
    models.release()
    await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 2)
    assert [m.text for m in telegram.bot_messages(PRIVATE)] == [
        "[alpha-served] first", "[alpha-served] second"]


async def test_beyond_five_waiting_a_message_is_refused_and_not_stored(
    bot, telegram, models, db
):
    models.hold()
    telegram.user_sends("q0", chat_id=PRIVATE)
    await telegram.wait_for(lambda: models.held == 1)
    for n in range(1, 6):
        telegram.user_sends(f"q{n}", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 5)
    telegram.user_sends("q6", chat_id=PRIVATE)
    refusal = await telegram.wait_for(
        lambda: next((m for m in telegram.bot_messages(PRIVATE) if "did not keep" in m.text),
                     None))
    assert refusal.text == ("⏳ 5 messages are already waiting for an answer, so I did not keep "
                            "this one. Send it again once I've answered them.")
    models.release()
    await telegram.wait_for(lambda: len(models.chat_requests()) == 6
                            and len(telegram.bot_messages(PRIVATE)) == 12, timeout=15)
    assert [contents(r)[-1] for r in models.chat_requests()] == [f"q{n}" for n in range(6)]
    # Stored in whatever order the updates reached the database, each question is put after
    # the answer before it in the tree too; the refused one is not stored.
    stored = await rows(db, "SELECT id, parent_id, role, content FROM message", 12)
    by_content = {m["content"]: m for m in stored}
    assert sorted(by_content) == sorted([f"q{n}" for n in range(6)]
                                        + [f"[alpha-served] q{n}" for n in range(6)])
    for n in range(1, 6):
        assert by_content[f"q{n}"]["parent_id"] == by_content[f"[alpha-served] q{n - 1}"]["id"]
        assert by_content[f"[alpha-served] q{n}"]["parent_id"] == by_content[f"q{n}"]["id"]
    # The last turn is settled (after its delivery): the conversation continues from it.
    assert await rows(db, "SELECT id FROM conversation WHERE head_message_id = :id", 1,
                      id=by_content["[alpha-served] q5"]["id"])


async def test_in_groups_a_queued_question_gets_a_reaction_and_answers_reply_to_each(
    bot, telegram, models
):
    models.hold()
    asked = [telegram.user_sends(f"{BOT} q0", chat_id=GROUP, user_id=7,
                                 chat_type="group")["message"]["message_id"]]
    await telegram.wait_for(lambda: models.held == 1)
    asked.append(telegram.user_sends(f"{BOT} q1", chat_id=GROUP, user_id=8,
                                     chat_type="group")["message"]["message_id"])
    await telegram.wait_for(lambda: telegram.reactions(GROUP, asked[1]) == ["👀"])
    assert telegram.bot_messages(GROUP) == []  # no note in a group: the reaction says it
    models.release()
    await telegram.wait_for(
        lambda: [m.text for m in telegram.bot_messages(GROUP)]
        == ["[alpha-served] q0", "[alpha-served] q1"])
    assert [m.reply_to_message_id for m in telegram.bot_messages(GROUP)] == asked
    assert contents(models.chat_requests()[1])[1:] == ["q0", "[alpha-served] q0", "q1"]


async def test_a_queue_left_by_a_stopping_process_is_answered_by_the_next(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
):
    models.set_reply("alpha-served", lambda body: " ".join(
        [f"re:{body['messages'][-1]['content']}"] * 10))
    models.tokens_per_chunk = 1
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix):
        models.hold()
        telegram.user_sends("one", chat_id=PRIVATE)
        await telegram.wait_for(lambda: models.held == 1)
        telegram.user_sends("two", chat_id=PRIVATE)
        telegram.user_sends("three", chat_id=PRIVATE)
        await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 2)
        models.chunk_delay = 0.1  # the answer being written outlasts the start of shutdown
        models.release()
    # The process finished the answer it was writing and left the queue alone.
    assert len(models.chat_requests()) == 1
    await rows(db, "SELECT id FROM message WHERE role = 'assistant'", 1)
    models.chunk_delay = 0
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix):
        await telegram.wait_for(lambda: len(models.chat_requests()) == 3
                                and len(telegram.bot_messages(PRIVATE)) == 5)
    assert [contents(r)[1:] for r in models.chat_requests()] == [
        ["one"],
        ["one", " ".join(["re:one"] * 10), "two"],
        ["one", " ".join(["re:one"] * 10), "two", " ".join(["re:two"] * 10), "three"],
    ]


async def test_editing_a_queued_message_changes_what_is_asked(bot, telegram, models, db):
    models.hold()
    telegram.user_sends("first", chat_id=PRIVATE)
    await telegram.wait_for(lambda: models.held == 1)
    second = telegram.user_sends("secnd", chat_id=PRIVATE)["message"]["message_id"]
    await telegram.wait_for(lambda: telegram.reactions(PRIVATE, second) == ["👀"])
    telegram.user_edits(PRIVATE, second, "second, corrected")
    await telegram.wait_for(lambda: telegram.reactions(PRIVATE, second) == ["✍"])
    models.release()
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    assert contents(models.chat_requests()[1])[-1] == "second, corrected"
    questions = await rows(db, "SELECT content, origin FROM message WHERE role = 'user' "
                               "ORDER BY id")
    assert [(q["content"], q["origin"]) for q in questions] == [
        ("first", "original"), ("second, corrected", "original")]
    await telegram.wait_for(lambda: len(telegram.bot_messages(PRIVATE)) == 3)  # note + 2
    assert not any(m.text.startswith("You edited") for m in telegram.bot_messages(PRIVATE))


async def test_editing_an_answered_message_offers_a_sibling_branch(bot, telegram, models, db):
    first = telegram.user_sends("capital of France?", chat_id=PRIVATE)["message"]["message_id"]
    await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert "edited_message" in telegram.calls("getUpdates")[-1]["allowed_updates"]
    telegram.user_edits(PRIVATE, first, "capital of Spain?")
    [_, offer] = await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert offer.text.startswith("You edited a message I have already answered.")
    assert labels(offer) == ["Answer the edited version"]
    assert len(models.chat_requests()) == 1  # nothing is asked until the user says so

    data = button(offer, "Answer")
    query = telegram.user_presses(PRIVATE, offer.message_id, data)
    assert await toast(telegram, query) == "Answering the edited version…"
    await telegram.wait_for(
        lambda: telegram.bot_messages(PRIVATE)[-1].text == "[alpha-served] capital of Spain?")
    assert labels(telegram.bot_messages(PRIVATE)[1]) == []  # the offer's button is gone
    # A sibling branch: the old question and answer are not in its history.
    assert contents(models.chat_requests()[1]) == ["You are Alpha.", "capital of Spain?"]
    again = telegram.user_presses(PRIVATE, offer.message_id, data, forged=True)
    assert await toast(telegram, again) == "That edited version has already been asked."

    telegram.user_sends("and its population?", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 3)
    assert contents(models.chat_requests()[2])[1:] == [
        "capital of Spain?", "[alpha-served] capital of Spain?", "and its population?"]
    users = await rows(db, "SELECT id, parent_id, content, origin FROM message "
                           "WHERE role = 'user' ORDER BY id", 3)
    assert [(u["content"], u["origin"], u["parent_id"]) for u in users[:2]] == [
        ("capital of France?", "original", None), ("capital of Spain?", "edited", None)]
    answers = await rows(db, "SELECT parent_id, content FROM message WHERE role = 'assistant' "
                             "ORDER BY id", 3)
    assert [a["parent_id"] for a in answers[:2]] == [users[0]["id"], users[1]["id"]]
    assert answers[0]["content"] == "[alpha-served] capital of France?"  # the old one stays


async def test_edits_in_groups_only_the_author_may_ask_and_not_after_new(
    bot, telegram, models
):
    chatter = telegram.user_sends("just chatting", chat_id=GROUP, user_id=7,
                                  chat_type="group")["message"]["message_id"]
    asked = telegram.user_sends(f"{BOT} q1", chat_id=GROUP, user_id=7,
                                chat_type="group")["message"]["message_id"]
    await telegram.wait_for(lambda: [m.text for m in telegram.bot_messages(GROUP)]
                            == ["[alpha-served] q1"])
    telegram.user_edits(GROUP, chatter, "just chatting, edited")  # never stored: ignored
    telegram.user_edits(GROUP, asked, f"{BOT} q1, better")
    [_, offer] = await telegram.wait_for_bot_messages(GROUP, 2)
    assert offer.reply_to_message_id == asked
    data = button(offer, "Answer")
    other = telegram.user_presses(GROUP, offer.message_id, data, user_id=8)
    assert await toast(telegram, other) == ("Only the person who wrote the message can ask "
                                            "for this.")
    telegram.user_sends(f"/new@{BOT[1:]}", chat_id=GROUP, user_id=7, chat_type="group")
    await telegram.wait_for_bot_messages(GROUP, 3)
    mine = telegram.user_presses(GROUP, offer.message_id, data, user_id=7)
    assert await toast(telegram, mine) == ("That conversation was ended with /new. Send the "
                                           "edited question as a new message.")
    assert len(models.chat_requests()) == 1
    assert len(telegram.bot_messages(GROUP)) == 3


async def test_new_drops_the_queue_and_says_how_many(bot, telegram, models, db):
    models.hold()
    telegram.user_sends("first", chat_id=PRIVATE)
    await telegram.wait_for(lambda: models.held == 1)
    telegram.user_sends("second", chat_id=PRIVATE)
    telegram.user_sends("third", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 2)
    telegram.user_sends("/new", chat_id=PRIVATE)
    reset = await telegram.wait_for(lambda: next(
        (m for m in telegram.bot_messages(PRIVATE) if m.text.startswith("New conversation")),
        None))
    assert reset.text.endswith("Queued messages left unanswered: 2. Send them again if you "
                               "still need them.")
    models.release()
    await telegram.wait_for(lambda: any(m.text == "[alpha-served] first"
                                        for m in telegram.bot_messages(PRIVATE)))
    telegram.user_sends("fresh", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(models.chat_requests()) == 2)
    assert [contents(r)[1:] for r in models.chat_requests()] == [["first"], ["fresh"]]


async def test_without_redis_the_queue_behaves_the_same_in_one_process(
    monkeypatch, tmp_path, telegram, models, database_url
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, None):
        models.hold()
        telegram.user_sends("first", chat_id=PRIVATE)
        await telegram.wait_for(lambda: models.held == 1)
        second = telegram.user_sends("second", chat_id=PRIVATE)["message"]["message_id"]
        await telegram.wait_for(lambda: telegram.reactions(PRIVATE, second) == ["👀"])
        assert notes(telegram, PRIVATE) == [
            "⏳ Queued, place 1 in line: I'll answer it right after the answers before it."]
        models.release()
        await telegram.wait_for(lambda: len(models.chat_requests()) == 2
                                and len(telegram.bot_messages(PRIVATE)) == 3)
    assert contents(models.chat_requests()[1])[1:] == ["first", "[alpha-served] first",
                                                       "second"]


async def test_a_message_sent_during_a_regeneration_is_answered_after_it(bot, telegram, models):
    telegram.user_sends("first", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    models.hold()
    query = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "🔄"))
    await toast(telegram, query)
    await telegram.wait_for(lambda: models.held == 1)
    telegram.user_sends("second", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 1)
    models.release()
    await telegram.wait_for(lambda: len(models.chat_requests()) == 3)
    assert [contents(r)[1:] for r in models.chat_requests()] == [
        ["first"], ["first"], ["first", "[alpha-served] first", "second"]]
    await telegram.wait_for(
        lambda: telegram.bot_messages(PRIVATE)[-1].text == "[alpha-served] second")


async def test_a_queued_question_keeps_the_model_and_prompt_chosen_when_it_was_sent(
    bot, telegram, models
):
    models.hold()
    telegram.user_sends("first", chat_id=PRIVATE)
    await telegram.wait_for(lambda: models.held == 1)
    telegram.user_sends("second", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 1)
    telegram.user_sends("/model", chat_id=PRIVATE)
    menu = await telegram.wait_for(lambda: next(
        (m for m in telegram.bot_messages(PRIVATE) if labels(m)[:1] == ["✓ Alpha"]), None))
    await toast(telegram, telegram.user_presses(PRIVATE, menu.message_id, button(menu, "Beta")))
    telegram.user_sends("/system Be brief.", chat_id=PRIVATE)
    await telegram.wait_for(lambda: any(m.text.startswith("✅ System prompt set")
                                        for m in telegram.bot_messages(PRIVATE)))
    telegram.user_sends("third", chat_id=PRIVATE)
    await telegram.wait_for(lambda: len(notes(telegram, PRIVATE)) == 2)
    models.release()
    await telegram.wait_for(lambda: len(models.chat_requests()) == 3)
    assert [(r["model"], contents(r)[0], contents(r)[-1]) for r in models.chat_requests()] == [
        ("alpha-served", "You are Alpha.", "first"), ("alpha-served", "You are Alpha.", "second"),
        ("beta-served", "Be brief.", "third")]
