"""Repositories and migrations on real Postgres, and on SQLite (the embedded default)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.base import Base
from storage.db import create_engine, create_sessionmaker
from storage.migrate import downgrade, upgrade
from storage.repositories.conversations import (
    AlreadyStored,
    AnswerRecord,
    ConversationRepository,
)
from storage.repositories.users import TelegramUser, UserRepository


@pytest.fixture
async def repos(db_url):
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    yield UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    await engine.dispose()


async def test_schema_from_migrations_matches_the_models(db_url):
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    await engine.dispose()
    assert diff == []


async def test_downgrade_to_base_and_back(db_url):
    await downgrade(db_url, "base")
    await upgrade(db_url)
    engine = create_engine(db_url)
    repo = UserRepository(create_sessionmaker(engine))
    user, _ = await repo.touch(TelegramUser(1), 1, "private", None)
    assert user.id
    await engine.dispose()


async def test_downgrade_closes_topic_conversations_and_keeps_the_chats(db_url):
    """0005 → 0004 with several topics open in one chat: one open conversation per chat."""
    import sqlalchemy as sa

    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    users, convs = UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    user, chat = await users.touch(TelegramUser(5), -1005, "supergroup", None)
    general = await convs.active(chat, user.id)
    for topic in (3, 4):
        await convs.active(chat, user.id, thread_id=topic)
    await engine.dispose()
    await downgrade(db_url, "0004")
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        open_ = (await conn.execute(sa.text(
            "SELECT id FROM conversation WHERE closed_at IS NULL"))).scalars().all()
    await engine.dispose()
    assert open_ == [general.id]
    await upgrade(db_url)


async def test_each_topic_is_its_own_conversation(repos):
    users, convs = repos
    user, chat = await users.touch(TelegramUser(6), -1006, "supergroup", None)
    general = await convs.active(chat, user.id)
    topic_a = await convs.active(chat, user.id, thread_id=11)
    topic_b = await convs.active(chat, user.id, thread_id=12)
    assert len({general.id, topic_a.id, topic_b.id}) == 3
    assert (await convs.active(chat, user.id, thread_id=11)).id == topic_a.id
    assert (await convs.active(chat, user.id, thread_id=None)).id == general.id
    assert await convs.close_active(chat, thread_id=11)
    assert (await convs.active(chat, user.id, thread_id=11)).id != topic_a.id
    assert (await convs.active(chat, user.id, thread_id=12)).id == topic_b.id
    assert (await convs.active(chat, user.id)).id == general.id


async def test_users_are_upserted_and_keep_their_model_choice(repos):
    users, _ = repos
    user, chat_id = await users.touch(TelegramUser(42, "ann", "Ann", "en"), 42, "private", None)
    await users.set_model(user.id, "beta")
    again, chat_again = await users.touch(
        TelegramUser(42, "ann2", "Ann", "ru"), 42, "private", None
    )
    assert again.id == user.id and chat_again == chat_id
    assert again.username == "ann2" and again.language_code == "ru" and again.model_id == "beta"


async def test_message_tree_path_and_head(repos):
    users, convs = repos
    user, chat_id = await users.touch(TelegramUser(7), 7, "private", None)
    conversation = await convs.active(chat_id, user.id)
    q1 = await convs.add_user_message(conversation.id, user.id, "q1", 7, 1)
    a1 = await convs.add_answer(
        q1, AnswerRecord("a1", "alpha", "alpha-served", params={"temperature": 0.5},
                         prompt_tokens=5, completion_tokens=2, ttft_ms=10, total_ms=20,
                         finish_reason="stop"),
    )
    await convs.add_deliveries(a1.id, 7, [2, 3])
    q2 = await convs.add_user_message(conversation.id, user.id, "q2", 7, 4)
    assert q2.parent_id == a1.id
    path = await convs.path_to(q2.id)
    assert [(m.role, m.content) for m in path] == [("user", "q1"), ("assistant", "a1"),
                                                   ("user", "q2")]
    stored = await convs.get_message(a1.id)
    assert stored.params == {"temperature": 0.5} and stored.model_id == "alpha"
    assert [d.tg_message_id for d in await convs.deliveries(a1.id)] == [2, 3]
    # A failed answer is stored, and the conversation returns to where it was before q2:
    # the next question is a sibling of the unanswered one, not glued onto it.
    failed = await convs.add_answer(q2, AnswerRecord("", "alpha", "alpha-served", status="error",
                                                     error_kind="unavailable"))
    q3 = await convs.add_user_message(conversation.id, user.id, "q3", 7, 6)
    assert q3.parent_id == a1.id and failed.status == "error"


async def test_duplicate_telegram_message_is_refused(repos):
    users, convs = repos
    user, chat_id = await users.touch(TelegramUser(8), 8, "private", None)
    conversation = await convs.active(chat_id, user.id)
    await convs.add_user_message(conversation.id, user.id, "hi", 8, 1)
    with pytest.raises(AlreadyStored):
        await convs.add_user_message(conversation.id, user.id, "hi", 8, 1)


async def test_one_open_conversation_per_chat_even_under_races(repos):
    users, convs = repos
    user, chat_id = await users.touch(TelegramUser(9), 9, "private", None)
    opened = await asyncio.gather(*(convs.active(chat_id, user.id) for _ in range(8)))
    assert len({c.id for c in opened}) == 1
    assert await convs.close_active(chat_id)
    fresh = await convs.active(chat_id, user.id)
    assert fresh.id != opened[0].id


async def test_battle_votes_are_final_after_the_change_window(repos, db_url):
    from datetime import timedelta

    from storage.repositories.feedback import BattleVoteRefused, FeedbackRepository

    users, convs = repos
    engine = create_engine(db_url)
    feedback = FeedbackRepository(create_sessionmaker(engine))
    user, chat_id = await users.touch(TelegramUser(11), 11, "private", None)
    other, _ = await users.touch(TelegramUser(12), 12, "private", None)
    conversation = await convs.active(chat_id, user.id)
    prompt = await convs.add_user_message(conversation.id, user.id, "q", 11, 1)
    a = await convs.add_answer(prompt, AnswerRecord("a", "alpha", "x"), origin="arena")
    b = await convs.add_answer(prompt, AnswerRecord("b", "beta", "y"), origin="arena",
                               head="keep")
    battle = await feedback.create_battle(chat_row_id=chat_id, user_id=user.id, prompt=prompt,
                                          answer_a=a, answer_b=b)
    with pytest.raises(BattleVoteRefused):
        await feedback.vote_battle(battle.id, other.id, "a", timedelta(minutes=5))
    voted, changed = await feedback.vote_battle(battle.id, user.id, "b", timedelta(minutes=5))
    assert changed and voted.winner == "b"
    _, changed = await feedback.vote_battle(battle.id, user.id, "b", timedelta(0))
    assert not changed  # the same vote again is a no-op, not an error
    with pytest.raises(BattleVoteRefused, match="final"):
        await feedback.vote_battle(battle.id, user.id, "a", timedelta(0))
    with pytest.raises(BattleVoteRefused, match="final"):
        await feedback.set_battle_strength(battle.id, user.id, "better", timedelta(0))
    stats = await feedback.user_stats(user.id)
    assert stats.battles == 1 and stats.favourite_model == "beta"
    await engine.dispose()


async def test_a_question_sent_during_an_answer_follows_that_answer(repos):
    users, convs = repos
    user, chat_id = await users.touch(TelegramUser(21), 21, "private", None)
    conversation = await convs.active(chat_id, user.id)
    q1 = await convs.add_user_message(conversation.id, user.id, "q1", 21, 1)
    q2 = await convs.add_user_message(conversation.id, user.id, "q2", 21, 2)  # while answering
    a1 = await convs.add_answer(q1, AnswerRecord("a1", "alpha", "x"))
    path = await convs.path_to(q2.id)
    assert [m.content for m in path] == ["q1", "a1", "q2"]
    q3 = await convs.add_user_message(conversation.id, user.id, "q3", 21, 3)
    assert [m.content for m in await convs.path_to(q3.id)] == ["q1", "a1", "q2", "q3"]
    assert a1.parent_id == q1.id


async def test_a_question_sent_during_an_unanswered_turn_is_not_glued_to_it(repos):
    users, convs = repos
    user, chat_id = await users.touch(TelegramUser(22), 22, "private", None)
    conversation = await convs.active(chat_id, user.id)
    q1 = await convs.add_user_message(conversation.id, user.id, "q1", 22, 1)
    a1 = await convs.add_answer(q1, AnswerRecord("a1", "alpha", "x"))
    q2 = await convs.add_user_message(conversation.id, user.id, "q2", 22, 2)
    assert q2.parent_id == a1.id
    q3 = await convs.add_user_message(conversation.id, user.id, "q3", 22, 3)  # while answering
    empty = await convs.store_answer(q2, AnswerRecord("  ", "alpha", "x", status="empty"))
    await convs.conclude(empty)
    # q3 came after q2 in the chat; q2 got no answer, so q3 sits beside it, after a1.
    assert [m.content for m in await convs.path_to(q3.id)] == ["q1", "a1", "q3"]
    q4 = await convs.add_user_message(conversation.id, user.id, "q4", 22, 4)
    assert [m.content for m in await convs.path_to(q4.id)] == ["q1", "a1", "q3", "q4"]
    # A delivered answer later re-marked undelivered is not the head either.
    a4 = await convs.store_answer(q4, AnswerRecord("a4", "alpha", "x"))
    await convs.conclude(a4, status="undelivered")
    assert (await convs.get_message(a4.id)).status == "undelivered"
    q5 = await convs.add_user_message(conversation.id, user.id, "q5", 22, 5)
    assert q5.parent_id == q3.id  # beside q4, which got nothing the user saw


async def test_a_question_is_stored_with_its_asker_and_history_in_one_go(repos, db_url):
    _, convs = repos
    ann = TelegramUser(77, "ann", "Ann", "en")
    first = await convs.ask(ann, (77, "private", None), None, "q1", 1)
    assert first.path == [first.question] and first.question.parent_id is None
    answer = await convs.add_answer(first.question, AnswerRecord("a1", "alpha", "alpha-served"))
    second = await convs.ask(ann, (77, "private", None), None, "q2", 3)
    assert [m.content for m in second.path] == ["q1", "a1", "q2"]
    assert second.question.parent_id == answer.id
    assert second.user.id == first.user.id and second.chat_row_id == first.chat_row_id
    with pytest.raises(AlreadyStored):  # Telegram delivered the update twice
        await convs.ask(ann, (77, "private", None), None, "q2", 3)
    # A topic is a conversation of its own.
    topic = await convs.ask(ann, (77, "private", None), 5, "in a topic", 4)
    assert topic.path == [topic.question]

    # Unchanged, the asker and the chat are read, not rewritten (the row version, Postgres's
    # xmin, stays); a new name is written.
    renamed = TelegramUser(77, "ann", "Anna", "en")
    if not db_url.startswith("postgresql"):
        assert (await convs.ask(renamed, (77, "private", None), None, "q4", 7)).user.first_name \
            == "Anna"
        return
    engine = create_engine(db_url)
    version = sa.text("SELECT u.xmin::text || c.xmin::text FROM user_account u, chat c "
                      "WHERE u.telegram_id = 77 AND c.telegram_id = 77")
    async with engine.connect() as conn:
        before = (await conn.execute(version)).scalar_one()
        await convs.ask(ann, (77, "private", None), None, "q3", 6)
        await conn.rollback()
        assert (await conn.execute(version)).scalar_one() == before
        assert (await convs.ask(renamed, (77, "private", None), None, "q4", 7)).user.first_name \
            == "Anna"
        await conn.rollback()
        assert (await conn.execute(version)).scalar_one() != before
    await engine.dispose()
