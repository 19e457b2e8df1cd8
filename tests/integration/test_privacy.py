"""/privacy's storage: consent, and "forget me" leaving nothing of the person behind (a grep of
`pg_dump`), group conversations kept whole with tombstones, answers finishing after it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.db import create_engine, create_sessionmaker
from storage.exports import ExportOptions, export
from storage.leaderboard import Battle as BtBattle
from storage.leaderboard import leaderboard
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.limits import LimitsRepository
from storage.repositories.privacy import FORGOTTEN, PrivacyRepository, QuestionGone
from storage.repositories.users import TelegramUser
from tests.privacy_checks import pg_dump_text, traces

ALICE = TelegramUser(8123456789, "alice_zq_priv", "Alizqia", "en")
BOB = TelegramUser(8987654321, "bob_other", "Bob", "en")
ADMIN = TelegramUser(8555000111, "the_admin", "Admin", "en")
WORD = "zebrafrost"  # only Alice writes it
GROUP = (-1008123456, "supergroup", "Tea lovers")


def record(text: str, model: str = "alpha") -> AnswerRecord:
    return AnswerRecord(content=text, model_id=model, served_model=f"{model}-served",
                        system_prompt="Be kind.", reasoning=f"thinking about {text}")


class World:
    def __init__(self, sessionmaker) -> None:
        self.conversations = ConversationRepository(sessionmaker)
        self.feedback = FeedbackRepository(sessionmaker)
        self.privacy = PrivacyRepository(sessionmaker)
        self.limits = LimitsRepository(sessionmaker)
        self.tg_message = 100

    async def turn(self, who: TelegramUser, chat, text: str, answer: str,
                   model: str = "alpha"):
        self.tg_message += 1
        asked = await self.conversations.ask(who, chat, None, text, self.tg_message)
        stored = await self.conversations.store_answer(asked.question, record(answer, model))
        await self.conversations.conclude(stored, delivered=(chat[0], [self.tg_message + 500]))
        return asked, stored

    async def battle(self, who: TelegramUser, chat, text: str, winner: str):
        self.tg_message += 1
        asked = await self.conversations.ask(who, chat, None, text, self.tg_message)
        a = await self.conversations.store_answer(asked.question, record(f"A: {text}", "alpha"),
                                                  origin="arena")
        await self.conversations.conclude(a)
        b = await self.conversations.store_answer(asked.question, record(f"B: {text}", "beta"),
                                                  origin="arena")
        await self.conversations.conclude(b, head="keep")
        battle = await self.feedback.create_battle(
            chat_row_id=asked.chat_row_id, user_id=asked.user.id, prompt=asked.question,
            answer_a=a, answer_b=b)
        await self.feedback.vote_battle(battle.id, asked.user.id, winner, timedelta(minutes=5))
        return battle


@pytest.fixture
async def world(db_url):
    engine = create_engine(db_url)
    yield World(create_sessionmaker(engine)), engine
    await engine.dispose()


async def alice_everywhere(w: World) -> dict:
    """Alice in her private chat (questions, votes, an edit, a battle) and in a group (one
    question Bob's conversation continues below, one at the end); Bob's own data; an admin's
    ban and unban of Alice in the audit log."""
    private = (ALICE.telegram_id, "private", None)
    asked, answer = await w.turn(ALICE, private, f"what is {WORD}?", "A cold stripy horse.")
    await w.feedback.toggle_vote(answer.id, asked.user.id, asked.chat_row_id, 1)
    await w.feedback.add_edit(answer, asked.user.id, asked.chat_row_id,
                              f"{WORD} is my own word.")
    await w.battle(ALICE, private, f"battle about {WORD}", "a")
    first, first_answer = await w.turn(ALICE, GROUP, f"group {WORD} question",
                                       f"echo {WORD} in group")
    bob_q, bob_answer = await w.turn(BOB, GROUP, "and what about tea?", "Tea is nice.")
    await w.feedback.toggle_vote(first_answer.id, bob_q.user.id, bob_q.chat_row_id, 1)
    last, last_answer = await w.turn(ALICE, GROUP, f"last {WORD} in the group",
                                     f"a last {WORD} answer")
    await w.battle(BOB, (BOB.telegram_id, "private", None), "bob's battle", "b")
    admin, _ = await w.turn(ADMIN, (ADMIN.telegram_id, "private", None), "hi", "hello")
    alice = await w.limits.find_user(str(ALICE.telegram_id))
    await w.limits.ban(alice, f"spam by {ALICE.username}", actor_id=admin.user.id)
    await w.limits.unban(alice, actor_id=admin.user.id)
    return {"first": first.question, "first_answer": first_answer,
            "bob_question": bob_q.question, "bob_answer": bob_answer,
            "last": last.question, "last_answer": last_answer}


async def test_consent_is_stored_and_nothing_is_created_for_strangers(world):
    w, engine = world
    private = (ALICE.telegram_id, "private", None)
    await w.turn(ALICE, private, "hello", "hi")
    person = await w.privacy.person(ALICE.telegram_id)
    assert person is not None and person.data_consent is None
    assert await w.privacy.set_consent(ALICE.telegram_id, False)
    assert (await w.privacy.person(ALICE.telegram_id)).data_consent is False
    assert await w.privacy.set_consent(ALICE.telegram_id, True)
    assert (await w.privacy.person(ALICE.telegram_id)).data_consent is True
    async with engine.connect() as conn:
        consent_at = await conn.scalar(sa.text(
            "SELECT consent_at FROM user_account WHERE telegram_id = :id"),
            {"id": ALICE.telegram_id})
    assert consent_at is not None
    # Someone never stored: nothing changes, no row appears.
    assert not await w.privacy.set_consent(BOB.telegram_id, False)
    assert await w.privacy.person(BOB.telegram_id) is None
    assert await w.privacy.forget(BOB.telegram_id) is None
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM user_account")) == 1


async def test_forgetting_keeps_group_conversations_whole_with_tombstones(world):
    w, engine = world
    made = await alice_everywhere(w)
    forgotten = await w.privacy.forget(ALICE.telegram_id)
    assert forgotten is not None
    assert forgotten.counts == {
        "votes": 1, "edits": 1, "battles": 1, "conversations": 1,
        # private: 2 questions, an answer, its edit, two arena answers; group: the last
        # question and its answer
        "messages_deleted": 6 + 2, "messages_blanked": 2, "audit_scrubbed": 2}
    assert (GROUP[0], None) in forgotten.places
    async with engine.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(sa.text(
            "SELECT id, parent_id, author_id, content, origin, reasoning, system_prompt, "
            "attachments FROM message"))).all()}
        # Alice's first group question and its answer stay as tombstones: Bob's turn hangs
        # below them.
        for kept in (made["first"].id, made["first_answer"].id):
            row = rows[kept]
            assert (row.content, row.author_id, row.origin, row.reasoning, row.system_prompt,
                    row.attachments) == ("", None, FORGOTTEN, None, None, None)
        assert rows[made["bob_question"].id].parent_id == made["first_answer"].id
        assert rows[made["bob_answer"].id].content == "Tea is nice."
        # Her last group question and its answer (nothing below them) are gone, and the
        # group's conversation goes on from Bob's answer.
        assert made["last"].id not in rows and made["last_answer"].id not in rows
        head = await conn.scalar(sa.text(
            "SELECT head_message_id FROM conversation WHERE id = :id"),
            {"id": made["first"].conversation_id})
        assert head == made["bob_answer"].id
        # No delivery of a tombstone is kept (they point at the Telegram messages).
        assert not (await conn.execute(sa.text(
            "SELECT 1 FROM message_delivery WHERE message_id IN (:a, :b)"),
            {"a": made["first"].id, "b": made["first_answer"].id})).all()
        # Bob's vote on the blanked answer stays (dumps leave out rows with a tombstone).
        assert await conn.scalar(sa.text("SELECT count(*) FROM vote")) == 1
        assert await conn.scalar(sa.text(
            "SELECT count(*) FROM user_account WHERE telegram_id = :id"),
            {"id": ALICE.telegram_id}) == 0
        audit = (await conn.execute(sa.text(
            "SELECT action, actor_id, target, detail FROM audit_log ORDER BY id"))).all()
    assert [a.action for a in audit] == ["ban", "unban", "forget"]
    assert all(a.target is None for a in audit)
    detail = audit[-1].detail
    detail = json.loads(detail) if isinstance(detail, str) else detail  # SQLite: text
    assert audit[-1].actor_id is None and detail == forgotten.counts
    # Forgetting twice finds nothing.
    assert await w.privacy.forget(ALICE.telegram_id) is None


async def test_answers_finishing_after_forgetting_store_nothing(world):
    w, engine = world
    asked = await w.conversations.ask(ALICE, GROUP, None, f"{WORD}?", 1)
    answered = await w.conversations.store_answer(asked.question, record("early"))
    bob = await w.conversations.ask(BOB, GROUP, None, "below", 2)
    late_private = await w.conversations.ask(ALICE, (ALICE.telegram_id, "private", None),
                                             None, f"{WORD} private", 3)
    await w.privacy.forget(ALICE.telegram_id)
    # The group question is a tombstone now, the private one is gone: neither takes an answer.
    with pytest.raises(QuestionGone):
        await w.conversations.store_answer(asked.question, record(f"late {WORD}"))
    with pytest.raises(QuestionGone):
        await w.conversations.store_answer(late_private.question, record(f"late {WORD}"))
    with pytest.raises(QuestionGone):
        await w.feedback.create_battle(chat_row_id=asked.chat_row_id, user_id=bob.user.id,
                                       prompt=asked.question, answer_a=answered,
                                       answer_b=answered)
    # The answer stored before settles without error and without recording anything.
    await w.conversations.conclude(answered, delivered=(GROUP[0], [77]))
    await w.conversations.add_deliveries(answered.id, GROUP[0], [78])
    await w.conversations.abandon(asked.question)
    async with engine.connect() as conn:
        assert not (await conn.execute(sa.text(
            "SELECT 1 FROM message_delivery WHERE tg_message_id IN (77, 78)"))).all()
        contents = set((await conn.execute(sa.text("SELECT content FROM message"))).scalars())
    assert not any(WORD in c or "late" in c or "early" in c for c in contents)


async def test_nothing_of_a_forgotten_person_is_in_the_database_dump(database_url, tmp_path):
    engine = create_engine(database_url)
    w = World(create_sessionmaker(engine))
    try:
        await alice_everywhere(w)
        before = await pg_dump_text(database_url)
        assert traces(before, ALICE.telegram_id, ALICE.username, ALICE.first_name, WORD)
        await w.privacy.forget(ALICE.telegram_id)
        after = await pg_dump_text(database_url)
        assert traces(after, ALICE.telegram_id, ALICE.username, ALICE.first_name, WORD) == []
        assert traces(after, BOB.username, "Tea is nice.")  # the others' data stays
        # The leaderboard still computes (Bob's battle), and a dump taken after has no trace.
        battles = [BtBattle(a, b, winner) async for a, b, winner
                   in w.feedback.judged_battles()]
        assert [(r.model, r.battles) for r in leaderboard(battles, rounds=10)] == [
            ("beta", 1), ("alpha", 1)]
        for fmt in ("arena", "kto", "sft", "dpo"):
            out = tmp_path / f"{fmt}.jsonl"
            await export(create_sessionmaker(engine), ExportOptions(format=fmt), out)
            if out.exists():
                assert WORD not in out.read_text()
    finally:
        await engine.dispose()


async def test_a_deadlock_with_an_answer_being_settled_is_retried(database_url):
    """An answer settling at the moment of forgetting holds its conversation and waits for the
    person's questions, which forgetting holds while it waits for the conversation: Postgres
    aborts one of the two. When it is the forgetting, it is tried again and succeeds."""
    engine = create_engine(database_url)
    w = World(create_sessionmaker(engine))
    asked, _ = await w.turn(ALICE, (ALICE.telegram_id, "private", None), f"{WORD}?", "hi")
    settling = await engine.connect()
    tries = 0
    blocked: asyncio.Task | None = None
    started = asyncio.Event()

    async def locked(user_id: int) -> None:
        nonlocal tries, blocked
        tries += 1
        if tries > 1:
            return
        # Like `conclude`: the conversation's row first, then the questions below the answer
        # (which wait for this forgetting). It detects the deadlock last.
        await settling.execute(sa.text("SET LOCAL deadlock_timeout = '20s'"))
        await settling.execute(sa.text("SELECT 1 FROM conversation WHERE id = :c FOR UPDATE"),
                               {"c": asked.question.conversation_id})
        blocked = asyncio.create_task(settling.execute(
            sa.text("UPDATE message SET parent_id = parent_id WHERE id = :q"),
            {"q": asked.question.id}))
        await asyncio.sleep(0.2)  # it is waiting for our lock now
        assert not blocked.done()
        started.set()

    try:
        forgetting = asyncio.create_task(w.privacy.forget(ALICE.telegram_id, locked))
        # The first try is aborted as the deadlock's victim; the settling goes on and ends.
        await asyncio.wait_for(started.wait(), 10)
        assert blocked is not None
        await asyncio.wait_for(blocked, 10)
        await settling.commit()
        forgotten = await asyncio.wait_for(forgetting, 10)
    finally:
        await settling.close()
        await engine.dispose()
    assert tries == 2 and forgotten is not None and forgotten.counts["conversations"] == 1

