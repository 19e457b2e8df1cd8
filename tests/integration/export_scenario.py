"""A small, fully known history of judgements, stored through the bot's own repositories."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from storage.db import create_engine, create_sessionmaker
from storage.models import Message
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser, UserRepository

ALICE = TelegramUser(987654321, username="alice_secret", first_name="Alicia",
                     language_code="en")
BOB = TelegramUser(123456789, username="bob_hidden", first_name="Roberto",
                   language_code="ru")
SYSTEM = "You are a careful assistant."
WINDOW = timedelta(minutes=5)


@dataclass
class Scenario:
    """What was stored, by name, for assertions."""

    answers: dict[str, Message] = field(default_factory=dict)
    battles: dict[str, int] = field(default_factory=dict)


async def store_scenario(url: str) -> Scenario:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    users, convs = UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    feedback = FeedbackRepository(sessionmaker)
    s = Scenario()
    tg_message = iter(range(1, 1000))

    async def ask(conversation_id: int, user_id: int, chat: int, text: str) -> Message:
        return await convs.add_user_message(conversation_id, user_id, text, chat,
                                            next(tg_message))

    def record(text: str, model: str, *, system: str | None = SYSTEM,
               status: str = "complete") -> AnswerRecord:
        return AnswerRecord(text, model, f"{model}-served", status=status, system_prompt=system)

    alice, alice_chat = await users.touch(ALICE, ALICE.telegram_id, "private", None)
    conversation = await convs.active(alice_chat, alice.id)

    # Turn 1: a liked answer to a question carrying PII.
    q1 = await ask(conversation.id, alice.id, alice_chat,
                   "Hi! Mail me at alice.w@example.com or call +7 912 345-67-89, "
                   "card 4111 1111 1111 1111.")
    s.answers["a1"] = await convs.add_answer(q1, record("Hello! How can I help?", "alpha"))
    await feedback.toggle_vote(s.answers["a1"].id, alice.id, alice_chat, 1)

    # Turn 2: an arena battle, B much better; the two sides had different system prompts.
    q2 = await ask(conversation.id, alice.id, alice_chat, "Как сварить борщ?")
    arena_a = await convs.add_answer(q2, record("Не знаю.", "alpha"), origin="arena")
    arena_b = await convs.add_answer(q2, record("Свёкла, капуста, бульон.", "beta", system=None),
                                     origin="arena", head="keep")
    battle = await feedback.create_battle(chat_row_id=alice_chat, user_id=alice.id, prompt=q2,
                                          answer_a=arena_a, answer_b=arena_b)
    await feedback.vote_battle(battle.id, alice.id, "b", WINDOW)
    await feedback.set_battle_strength(battle.id, alice.id, "much_better", WINDOW)
    s.answers |= {"arena_a": arena_a, "arena_b": arena_b}
    s.battles["borscht"] = battle.id

    # Turn 3: a disliked answer, a liked regeneration, then the user improves the liked one.
    q3 = await ask(conversation.id, alice.id, alice_chat, "And how long does it cook?")
    bad = await convs.add_answer(q3, record("Five minutes.", "alpha"))
    await feedback.toggle_vote(bad.id, alice.id, alice_chat, -1)
    good = await convs.add_answer(q3, record("About two hours.", "alpha"), origin="regenerated",
                                  head="take")
    await feedback.toggle_vote(good.id, alice.id, alice_chat, 1)
    edited = await feedback.add_edit(good, alice.id, alice_chat,
                                     "About two hours; add the beets in the last 20 minutes.")
    s.answers |= {"bad": bad, "good": good, "edited": edited}

    # Turn 4 (continues from the edit): a cut answer someone liked must not be exported.
    q4 = await ask(conversation.id, alice.id, alice_chat, "Thanks! Any dessert?")
    s.answers["cut"] = await convs.add_answer(q4, record("Try syrniki, they", "alpha",
                                                         status="cut"))
    await feedback.toggle_vote(s.answers["cut"].id, alice.id, alice_chat, 1)
    # Nor an answer that was empty, or that Telegram never delivered (votes on them cannot
    # come from the bot; if they exist anyway, they are not data).
    for name, text, status in (("empty", " \n ", "empty"), ("undelivered", "Syrniki!",
                                                            "undelivered")):
        q = await ask(conversation.id, alice.id, alice_chat, f"Dessert, {name}?")
        s.answers[name] = await convs.store_answer(q, record(text, "alpha"))
        await convs.conclude(s.answers[name], status=status)
        await feedback.toggle_vote(s.answers[name].id, alice.id, alice_chat, 1)

    # Bob: three battles in one conversation (a slight win for A, a tie, both bad), then the
    # same like/dislike pair twice in two conversations (an exact duplicate).
    bob, bob_chat = await users.touch(BOB, BOB.telegram_id, "private", None)
    conversation = await convs.active(bob_chat, bob.id)
    for name, winner, strength in (("slight", "a", "slightly_better"), ("tie", "tie", None),
                                   ("bothbad", "both_bad", None)):
        q = await ask(conversation.id, bob.id, bob_chat, f"Question for the {name} battle")
        a = await convs.add_answer(q, record(f"{name} answer A", "beta"), origin="arena")
        b = await convs.add_answer(q, record(f"{name} answer B", "gamma"), origin="arena",
                                   head="keep")
        fight = await feedback.create_battle(chat_row_id=bob_chat, user_id=bob.id, prompt=q,
                                             answer_a=a, answer_b=b)
        await feedback.vote_battle(fight.id, bob.id, winner, WINDOW)
        if strength:
            await feedback.set_battle_strength(fight.id, bob.id, strength, WINDOW)
        s.battles[name] = fight.id
    # An unjudged battle is never exported.
    q = await ask(conversation.id, bob.id, bob_chat, "Unjudged question")
    a = await convs.add_answer(q, record("u1", "beta"), origin="arena")
    b = await convs.add_answer(q, record("u2", "gamma"), origin="arena", head="keep")
    await feedback.create_battle(chat_row_id=bob_chat, user_id=bob.id, prompt=q,
                                 answer_a=a, answer_b=b)
    for _ in range(2):
        await convs.close_active(bob_chat)
        conversation = await convs.active(bob_chat, bob.id)
        q = await ask(conversation.id, bob.id, bob_chat, "2+2?")
        wrong = await convs.add_answer(q, record("5", "gamma", system=None))
        await feedback.toggle_vote(wrong.id, bob.id, bob_chat, -1)
        right = await convs.add_answer(q, record("4", "gamma", system=None),
                                       origin="regenerated", head="take")
        await feedback.toggle_vote(right.id, bob.id, bob_chat, 1)
    await engine.dispose()
    return s
