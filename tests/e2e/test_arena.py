"""Blind arena battles: two anonymous answers, a vote, the reveal, the strength."""

from __future__ import annotations

from tests.e2e.helpers import button, labels, rows, toast

CHAT = 5001
SERVED = {"alpha": "alpha-served", "beta": "beta-served"}


async def start_battle(telegram, chat_id: int = CHAT, **who):
    telegram.user_sends("/arena", chat_id=chat_id, **who)
    [on] = await telegram.wait_for_bot_messages(chat_id, 1)
    assert on.text.startswith("⚔️ Arena mode is on")
    telegram.user_sends("which is the best sorting algorithm?", chat_id=chat_id, **who)
    return await telegram.wait_for(
        lambda: (m := telegram.bot_messages(chat_id)) and len(m) == 3 and labels(m[2]) and m
    )


async def test_arena_turn_vote_reveal_strength_and_continuation(bot, telegram, models, db):
    _, a, b = await start_battle(telegram)
    assert a.text.startswith("Model A\n\n[") and b.text.startswith("Model B\n\n[")
    assert {a.entities[0]["type"], b.entities[0]["type"]} == {"bold"}
    served = {r["model"] for r in models.chat_requests()}
    assert served == {"alpha-served", "beta-served"}  # two different models
    assert "served" not in a.text.split("\n")[0] and "Alpha" not in a.text + b.text
    assert labels(a) == []
    assert labels(b) == ["🅰️ A is better", "🅱️ B is better", "🤝 Tie", "👎 Both are bad"]

    [battle] = await rows(db, "SELECT * FROM battle", 1)
    assert battle["winner"] is None and battle["anonymous"] is True
    assert battle["model_a"] != battle["model_b"]
    assert a.text.endswith(f"[{SERVED[battle['model_a']]}] which is the best sorting algorithm?")

    vote = telegram.user_presses(CHAT, b.message_id, button(b, "🅰️"))
    title = {"alpha": "Alpha", "beta": "Beta"}
    assert await toast(telegram, vote) == (
        f"Thanks! A was {title[battle['model_a']]}, B was {title[battle['model_b']]}."
    )
    await telegram.wait_for(lambda: telegram.bot_messages(CHAT)[1].text.startswith(
        f"Model A: {title[battle['model_a']]}"))
    revealed_b = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(CHAT)[2]).text.startswith(
            f"Model B: {title[battle['model_b']]}") and m
    )
    assert labels(revealed_b)[:4] == ["✓ 🅰️ A is better", "🅱️ B is better", "🤝 Tie",
                                     "👎 Both are bad"]
    assert labels(revealed_b)[4:] == ["Much better", "Better", "Slightly better",
                                      "About the same"]

    strength = telegram.user_presses(CHAT, b.message_id, button(revealed_b, "Much better"))
    assert await toast(telegram, strength) == "Saved: Much better"
    [judged] = await rows(db, "SELECT * FROM battle WHERE strength IS NOT NULL", 1)
    assert judged["winner"] == "a" and judged["strength"] == "much_better"
    assert judged["voted_at"] is not None
    answers = await rows(db, "SELECT id, origin, parent_id FROM message WHERE role='assistant'")
    assert {r["origin"] for r in answers} == {"arena"}
    assert {judged["answer_a_id"], judged["answer_b_id"]} == {r["id"] for r in answers}
    assert len({r["parent_id"] for r in answers}) == 1  # siblings under the prompt

    # The conversation continues with the winner's answer.
    telegram.user_sends("/arena", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 4)
    telegram.user_sends("why?", chat_id=CHAT)
    await telegram.wait_for_bot_messages(CHAT, 5)
    history = [m["content"] for m in models.chat_requests()[-1]["messages"]]
    winner_text = f"[{SERVED[battle['model_a']]}] which is the best sorting algorithm?"
    assert history[-2:] == [winner_text, "why?"]


async def test_vote_can_change_and_the_conversation_follows(bot, telegram, models, db):
    _, _, b = await start_battle(telegram)
    await toast(telegram, telegram.user_presses(CHAT, b.message_id, button(b, "🅰️")))
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[2])[0].startswith("✓"))
    b = telegram.bot_messages(CHAT)[2]
    await toast(telegram, telegram.user_presses(CHAT, b.message_id, button(b, "🅱️")))
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[2])[1].startswith("✓"))
    [battle] = await rows(db, "SELECT * FROM battle")
    assert battle["winner"] == "b"
    [conv] = await rows(db, "SELECT head_message_id FROM conversation")
    assert conv["head_message_id"] == battle["answer_b_id"]
    # A tie: the conversation continues from A.
    b = telegram.bot_messages(CHAT)[2]
    await toast(telegram, telegram.user_presses(CHAT, b.message_id, button(b, "🤝")))
    await telegram.wait_for(lambda: labels(telegram.bot_messages(CHAT)[2])[2].startswith("✓"))
    assert labels(telegram.bot_messages(CHAT)[2])[4:] == []  # no strength for a tie
    [conv] = await rows(db, "SELECT head_message_id FROM conversation")
    [battle] = await rows(db, "SELECT * FROM battle")
    assert battle["winner"] == "tie" and conv["head_message_id"] == battle["answer_a_id"]


async def test_only_the_asker_judges_a_group_battle(bot, telegram, db):
    group = -100999
    telegram.user_sends("/arena", chat_id=group, user_id=31, chat_type="group")
    await telegram.wait_for_bot_messages(group, 1)
    telegram.user_sends("@chatmux_test_bot ping", chat_id=group, user_id=31, chat_type="group")
    msgs = await telegram.wait_for(
        lambda: (m := telegram.bot_messages(group)) and len(m) == 3 and labels(m[2]) and m
    )
    b = msgs[2]
    stranger = telegram.user_presses(group, b.message_id, button(b, "🅱️"), user_id=32)
    assert await toast(telegram, stranger) == "Only the person who asked can judge this battle."
    [battle] = await rows(db, "SELECT winner FROM battle")
    assert battle["winner"] is None
    mine = telegram.user_presses(group, b.message_id, button(b, "🅱️"), user_id=31)
    assert (await toast(telegram, mine)).startswith("Thanks!")


async def test_arena_vote_buttons_elsewhere_are_refused(bot, telegram, db):
    _, a, b = await start_battle(telegram)
    wrong_place = telegram.user_presses(CHAT, a.message_id, button(b, "🅰️"), forged=True)
    assert await toast(telegram, wrong_place) == "This button is no longer valid."
    bad_winner = telegram.user_presses(CHAT, b.message_id,
                                       button(b, "🅰️").replace(":a", ":z"), forged=True)
    assert await toast(telegram, bad_winner) == "This button is no longer valid."
    [battle] = await rows(db, "SELECT winner FROM battle")
    assert battle["winner"] is None


async def test_a_vote_reveals_the_models_even_if_an_answer_was_deleted(bot, telegram, db):
    _, a, b = await start_battle(telegram)
    telegram.user_deletes(CHAT, a.message_id)
    vote = telegram.user_presses(CHAT, b.message_id, button(b, "🅱️"))
    assert (await toast(telegram, vote)).startswith("Thanks!")
    await telegram.wait_for(
        lambda: telegram.bot_messages(CHAT)[-1].text.startswith("Model B: "))
    assert labels(telegram.bot_messages(CHAT)[-1])[1] == "✓ 🅱️ B is better"
    assert not any("Something went wrong" in str(r.params.get("text"))
                   for r in telegram.requests)
