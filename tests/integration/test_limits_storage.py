"""Rate-limit buckets in real Redis (shared by processes, and their fallback when Redis is
down), and quota counting, tiers and bans on Postgres and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.limits import LimitsRepository
from storage.repositories.users import TelegramUser, UserRepository
from storage.token_bucket import RedisBuckets
from tests.redis_server import PrivateRedis
from tests.services import REDIS_URL


async def test_redis_bucket_is_shared_by_processes_and_expires(redis_prefix):
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        one, other = RedisBuckets(first, redis_prefix), RedisBuckets(second, redis_prefix)
        rate = 1 / 60  # a token a minute
        for buckets in (one, other, one):
            assert (await buckets.take("ask:1", 3, rate)).allowed
        refused = await other.take("ask:1", 3, rate)  # the other process sees the same bucket
        assert not refused.allowed and 55 < refused.wait <= 60
        peeked = await one.peek("ask:1", 3, rate)
        assert peeked.tokens < 0.1 and 175 < peeked.wait <= 180
        assert (await one.take("ask:2", 3, rate)).allowed  # per key
        ttl = await first.pttl(f"{redis_prefix}:bucket:ask:1")
        assert 0 < ttl <= 181_000  # gone once it would be full again
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_bucket_falls_back_to_this_process_when_redis_is_down(tmp_path):
    server = PrivateRedis(tmp_path / "redis")
    await server.start()
    client = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        buckets = RedisBuckets(client, "t")
        assert (await buckets.take("ask:1", 2, 0.01)).allowed
        await server.kill()
        # No exception, and still a limit: the process's own bucket.
        assert (await buckets.take("ask:1", 2, 0.01)).allowed
        assert (await buckets.take("ask:1", 2, 0.01)).allowed
        assert not (await buckets.take("ask:1", 2, 0.01)).allowed
        assert (await buckets.peek("ask:1", 2, 0.01)).tokens < 1
    finally:
        await client.aclose()
        await server.stop()


@pytest.fixture
async def stores(db_url):
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    yield (UserRepository(sessionmaker), ConversationRepository(sessionmaker),
           LimitsRepository(sessionmaker), engine)
    await engine.dispose()


async def test_quota_counts_the_answers_a_user_was_shown_per_model(stores):
    users, convs, limits, _ = stores
    ann, chat = await users.touch(TelegramUser(21, "Ann"), 21, "private", None)
    bob, bob_chat = await users.touch(TelegramUser(22), 22, "private", None)
    conversation = await convs.active(chat, ann.id)
    before = datetime.now(UTC) - timedelta(minutes=1)
    answers = [("alpha", "complete"), ("alpha", "cut"), ("alpha", "stopped"), ("beta", "complete"),
               ("alpha", "error"), ("alpha", "empty"), ("alpha", "undelivered")]
    for n, (model, status) in enumerate(answers):
        question = await convs.add_user_message(conversation.id, ann.id, f"q{n}", 21, n + 1)
        await convs.add_answer(question, AnswerRecord(f"a{n}", model, model, status=status))
    bobs = await convs.active(bob_chat, bob.id)
    question = await convs.add_user_message(bobs.id, bob.id, "q", 22, 1)
    await convs.add_answer(question, AnswerRecord("a", "alpha", "alpha"))
    # Answers never shown (error, empty, undelivered) do not count; other users' do not.
    assert await limits.answers_since(ann.id, ["alpha", "beta", "gamma"], before) == {
        "alpha": 3, "beta": 1}
    assert await limits.answers_since(bob.id, ["alpha"], before) == {"alpha": 1}
    assert await limits.answers_since(ann.id, ["alpha"],
                                      datetime.now(UTC) + timedelta(minutes=1)) == {}
    assert await limits.answers_since(ann.id, [], before) == {}


async def test_tiers_and_bans_are_stored_with_their_audit_entries(stores):
    users, _, limits, engine = stores
    admin, _ = await users.touch(TelegramUser(1), 1, "private", None)
    ann, _ = await users.touch(TelegramUser(31, "Ann_B"), 31, "private", None)
    assert ann.tier == "standard" and ann.banned_at is None
    assert (await limits.find_user("31")).id == ann.id
    assert (await limits.find_user("@ann_b")).id == ann.id  # usernames ignore case
    assert (await limits.find_user("ANN_B")).id == ann.id
    assert await limits.find_user("@nobody") is None and await limits.find_user("99") is None
    await limits.set_tier(ann, "premium", actor_id=admin.id)
    await limits.ban(ann, "spam", actor_id=admin.id)
    found = await limits.find_user("31")
    assert found.tier == "premium" and found.banned_at is not None and found.ban_reason == "spam"
    assert await limits.banned_ids() == {31}
    await limits.unban(found, actor_id=admin.id)
    found = await limits.find_user("31")
    assert found.banned_at is None and found.ban_reason is None
    assert await limits.banned_ids() == frozenset()
    async with engine.connect() as conn:
        audit = (await conn.execute(sa.text(
            "SELECT action, target FROM audit_log ORDER BY id"))).all()
    assert [tuple(row) for row in audit] == [("tier", "31"), ("ban", "31"), ("unban", "31")]


async def test_migration_0008_down_and_up_keeps_users_and_puts_them_in_standard(db_url):
    from storage.migrate import downgrade

    engine = create_engine(db_url)
    users = UserRepository(create_sessionmaker(engine))
    ann, chat = await users.touch(TelegramUser(41, "ann"), 41, "private", None)
    convs = ConversationRepository(create_sessionmaker(engine))
    conversation = await convs.active(chat, ann.id)
    await convs.add_user_message(conversation.id, ann.id, "kept", 41, 1)
    await LimitsRepository(create_sessionmaker(engine)).ban(ann, "x", actor_id=None)
    await engine.dispose()
    await downgrade(db_url, "0007")
    await upgrade(db_url)
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT telegram_id, tier, banned_at FROM user_account"))).all()
        messages = (await conn.execute(sa.text("SELECT content FROM message"))).scalars().all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [(41, "standard", None)]  # the ban went with 0008
    assert messages == ["kept"]
