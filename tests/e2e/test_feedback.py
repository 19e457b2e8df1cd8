"""Judgements in chat: votes, regenerations, edits — stored against the exact answer."""

from __future__ import annotations

import asyncio

from tests.e2e.helpers import button, labels, rows, toast

CHAT = 4001


async def ask(telegram, text: str, count: int, chat_id: int = CHAT):
    telegram.user_sends(text, chat_id=chat_id)
    messages = await telegram.wait_for_bot_messages(chat_id, count)
    return messages[-1]


async def test_every_answer_has_the_five_buttons(bot, telegram):
    answer = await ask(telegram, "hi", 1)
    assert labels(answer) == ["👍", "👎", "🔄", "🔀", "✏️"]
    assert all(len(b.encode()) <= 64 for b in
               [button(answer, p) for p in ("👍", "👎", "🔄", "🔀", "✏️")])


async def test_like_changed_to_dislike_leaves_one_row_with_the_latest_value(bot, telegram, db):
    answer = await ask(telegram, "hi", 1)
    like = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
    assert "Saved" in await toast(telegram, like)
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[0])[0] == "👍 1")
    dislike = telegram.user_presses(CHAT, answer.message_id, button(answer, "👎"))
    assert "👎" in await toast(telegram, dislike)
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[0])[:2] == ["👍", "👎 1"])
    votes = await rows(db, "SELECT v.value, m.content FROM vote v "
                           "JOIN message m ON m.id = v.message_id")
    assert [(v["value"], v["content"]) for v in votes] == [(-1, "[alpha-served] hi")]
    # Pressing the same vote again removes it.
    await asyncio.sleep(1.6)  # beyond the double-tap window
    again = telegram.user_presses(CHAT, answer.message_id, button(answer, "👎"))
    assert "removed" in await toast(telegram, again)
    assert await rows(db, "SELECT * FROM vote") == []


async def test_double_taps_and_retried_callbacks_write_one_row(bot, telegram, db):
    answer = await ask(telegram, "hi", 1)
    data = button(answer, "👍")
    first = telegram.user_presses(CHAT, answer.message_id, data)
    second = telegram.user_presses(CHAT, answer.message_id, data)  # a double tap
    telegram.resend_callback(first)  # the client retries the first query
    toasts = sorted([await toast(telegram, first), await toast(telegram, second)])
    assert toasts == ["Already saved", "👍 Saved — thanks!"]  # in whichever order they ran
    await asyncio.sleep(0.5)
    assert [v["value"] for v in await rows(db, "SELECT value FROM vote")] == [1]


async def test_forged_and_stale_callbacks_write_nothing(bot, telegram, db):
    answer = await ask(telegram, "hi", 1)
    other = await ask(telegram, "hello", 1, chat_id=4002)  # someone else's chat
    other_id = button(other, "👍").split(":")[-1]
    forged = [
        f"ans:up:{other_id}",  # another chat's answer
        "ans:up:999999999",  # no such answer
        "ans:up:notanumber",  # malformed
        "ans:explode:1",  # unknown action
        "bv:1:a",  # no such battle
        "garbage",
    ]
    for data in forged:
        query = telegram.user_presses(CHAT, answer.message_id, data, forged=True)
        assert await toast(telegram, query) == "This button is no longer valid."
        assert telegram.callback_answers()[query]["show_alert"] is True
    # A real button pressed under a different message of the same chat.
    menu_query = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
    await toast(telegram, menu_query)
    await asyncio.sleep(0.5)
    first_vote = await rows(db, "SELECT * FROM vote")
    assert len(first_vote) == 1  # only the real press
    second = await ask(telegram, "again", 2)
    misplaced = telegram.user_presses(CHAT, second.message_id, button(answer, "👎"), forged=True)
    assert await toast(telegram, misplaced) == "This button is no longer valid."
    assert await rows(db, "SELECT value FROM vote") == [{"value": 1}]


async def test_vote_on_a_deleted_conversation_is_refused(bot, telegram, db):
    answer = await ask(telegram, "hi", 1)
    await db.execute(__import__("sqlalchemy").text("DELETE FROM conversation"))
    await db.commit()
    query = telegram.user_presses(CHAT, answer.message_id, button(answer, "👍"))
    assert await toast(telegram, query) == "This button is no longer valid."
    assert await rows(db, "SELECT * FROM vote") == []


async def test_regenerate_adds_a_sibling_and_the_conversation_continues_from_it(
    bot, telegram, models, db
):
    replies = iter(["first try", "second try", "fine"])
    models.set_reply("alpha-served", lambda body: next(replies))
    answer = await ask(telegram, "tell me", 1)
    query = telegram.user_presses(CHAT, answer.message_id, button(answer, "🔄"))
    assert "another answer" in await toast(telegram, query)
    regenerated = (await telegram.wait_for_bot_messages(CHAT, 2))[-1]
    assert regenerated.text == "second try"
    assert labels(regenerated)[0] == "👍"

    siblings = await rows(db, "SELECT id, parent_id, origin, content FROM message "
                              "WHERE role = 'assistant' ORDER BY id", 2)
    assert [(s["origin"], s["content"]) for s in siblings] == [
        ("original", "first try"), ("regenerated", "second try")
    ]
    assert siblings[0]["parent_id"] == siblings[1]["parent_id"]

    await ask(telegram, "and then?", 3)
    history = [m["content"] for m in models.chat_requests()[-1]["messages"]]
    assert history == ["You are Alpha.", "tell me", "second try", "and then?"]


async def test_regenerate_with_another_model(bot, telegram, models, db):
    answer = await ask(telegram, "tell me", 1)
    switch = telegram.user_presses(CHAT, answer.message_id, button(answer, "🔀"))
    await toast(telegram, switch)
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[0]) == ["Beta", "« Back"])
    menu = telegram.bot_messages(CHAT)[0]
    pick = telegram.user_presses(CHAT, menu.message_id, button(menu, "Beta"))
    assert "Beta" in await toast(telegram, pick)
    regenerated = (await telegram.wait_for_bot_messages(CHAT, 2))[-1]
    assert regenerated.text == "[beta-served] tell me"
    assert labels(telegram.bot_messages(CHAT)[0])[0] == "👍"  # original buttons restored
    [row] = await rows(db, "SELECT model_id, origin FROM message WHERE origin = 'regenerated'", 1)
    assert row["model_id"] == "beta"


async def test_edit_stores_an_edited_sibling_linked_to_the_original(bot, telegram, models, db):
    answer = await ask(telegram, "capital of France?", 1)
    query = telegram.user_presses(CHAT, answer.message_id, button(answer, "✏️"))
    await toast(telegram, query)
    [prompt] = (await telegram.wait_for_bot_messages(CHAT, 2))[-1:]
    assert "improved answer" in prompt.text
    assert telegram.calls("sendMessage")[-1]["reply_markup"]["force_reply"] is True

    telegram.user_sends("Paris.", chat_id=CHAT)
    saved = (await telegram.wait_for_bot_messages(CHAT, 3))[-1]
    assert saved.text.startswith("✏️ Saved")
    assert len(models.chat_requests()) == 1  # the edit was not sent to the model

    [edit] = await rows(db, "SELECT * FROM answer_edit", 1)
    [original] = await rows(db, "SELECT * FROM message WHERE id = :id", id=edit["original_id"])
    [edited] = await rows(db, "SELECT * FROM message WHERE id = :id", id=edit["edited_id"])
    assert edited["origin"] == "edited" and edited["content"] == "Paris."
    assert edited["parent_id"] == original["parent_id"] and edited["author_id"] is not None
    assert original["content"] == "[alpha-served] capital of France?"

    await ask(telegram, "and Germany?", 4)
    history = [m["content"] for m in models.chat_requests()[-1]["messages"]]
    assert history[-2:] == ["Paris.", "and Germany?"]


async def test_cancel_aborts_an_edit(bot, telegram, models, db):
    answer = await ask(telegram, "q", 1)
    await toast(telegram, telegram.user_presses(CHAT, answer.message_id, button(answer, "✏️")))
    await telegram.wait_for_bot_messages(CHAT, 2)
    telegram.user_sends("/cancel", chat_id=CHAT)
    assert (await telegram.wait_for_bot_messages(CHAT, 3))[-1].text == "Cancelled."
    await ask(telegram, "a normal question", 4)
    assert await rows(db, "SELECT * FROM answer_edit") == []
    assert models.chat_requests()[-1]["messages"][-1]["content"] == "a normal question"


async def test_stats_summarise_the_users_judgements(bot, telegram):
    answer = await ask(telegram, "q", 1)
    await toast(telegram, telegram.user_presses(CHAT, answer.message_id, button(answer, "👍")))
    stats = await ask(telegram, "/stats", 2)
    assert "👍 1 and 👎 0" in stats.text and "0 arena battles" in stats.text
    assert "http" not in stats.text


async def test_group_members_each_rate_once_and_the_buttons_show_counts(bot, telegram, db):
    group = -100777
    telegram.user_sends("@chatmux_test_bot hello", chat_id=group, user_id=10, chat_type="group")
    await telegram.wait_for(
        lambda: (m := telegram.bot_messages(group)) and labels(m[0]) and m[0]
    )
    answer = telegram.bot_messages(group)[0]
    for user in (10, 11, 12):
        await toast(telegram, telegram.user_presses(group, answer.message_id,
                                                    button(answer, "👍"), user_id=user))
    await toast(telegram, telegram.user_presses(group, answer.message_id,
                                                button(answer, "👎"), user_id=13))
    await telegram.wait_for(lambda: labels(telegram.bot_messages(group)[0])[:2] == ["👍 3", "👎 1"])
    assert len(await rows(db, "SELECT * FROM vote")) == 4


async def test_a_burst_of_200_rating_callbacks_from_50_users_loses_and_duplicates_none(
    bot, telegram, db
):
    group = -100888
    answers = []
    for n in range(4):
        telegram.user_sends(f"@chatmux_test_bot q{n}", chat_id=group, user_id=20,
                            chat_type="group")
        await telegram.wait_for(
            lambda n=n: len(m := telegram.bot_messages(group)) == n + 1 and labels(m[-1])
        )
        answers.append(telegram.bot_messages(group)[-1])
    queries = []
    for user in range(100, 150):  # 50 users × 4 answers, all queued at once
        for answer in answers:
            value = "👍" if (user + answer.message_id) % 3 else "👎"
            queries.append(telegram.user_presses(group, answer.message_id,
                                                 button(answer, value), user_id=user))
    await telegram.wait_for(lambda: all(q in telegram.callback_answers() for q in queries),
                            timeout=60)
    votes = await rows(db, "SELECT message_id, user_id, value FROM vote", 200)
    assert len(votes) == 200
    assert len({(v["message_id"], v["user_id"]) for v in votes}) == 200
    for answer in answers:
        expected = sum(1 for user in range(100, 150) if (user + answer.message_id) % 3)
        await telegram.wait_for(
            lambda a=answer, e=expected: labels(
                next(m for m in telegram.bot_messages(group) if m.message_id == a.message_id)
            )[0] == f"👍 {e}",
            timeout=10,
        )


async def test_group_edit_prompt_targets_the_editor(bot, telegram, db):
    group = -100555
    telegram.user_sends("@chatmux_test_bot hi", chat_id=group, user_id=41, chat_type="group",
                        first_name="Kim")
    answer = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(group)) and labels(m[0]) and m[0]
    )
    await toast(telegram, telegram.user_presses(group, answer.message_id, button(answer, "✏️"),
                                                user_id=42, first_name="Lee"))
    [prompt] = (await telegram.wait_for_bot_messages(group, 2))[-1:]
    assert prompt.text.startswith("Lee, ")
    assert prompt.entities[0]["type"] == "text_mention" and prompt.entities[0]["user"]["id"] == 42
    assert telegram.calls("sendMessage")[-1]["reply_markup"]["selective"] is True
    telegram.user_sends("Hello!", chat_id=group, user_id=42, chat_type="group",
                        reply_to_message_id=prompt.message_id)
    [edit] = await rows(db, "SELECT * FROM answer_edit", 1)
    [editor] = await rows(db, "SELECT telegram_id FROM user_account WHERE id = :id",
                          id=edit["user_id"])
    assert editor["telegram_id"] == 42
