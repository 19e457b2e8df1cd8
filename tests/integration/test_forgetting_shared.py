""""Forget me" in shared state, in-process and on Redis alike: the person's private queues
dropped whole, their questions taken out of group queues (others' left), their edited texts,
rate-limit buckets, "told" marks and ✏️ edit mode gone; their answers being written stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis

from bot.forgetting import Forgetting
from bot.queueing import Queued
from bot.streaming.stops import StopSignals
from storage.db import create_engine, create_sessionmaker
from storage.question_queue import MemoryQueues, RedisQueues
from storage.repositories.conversations import ConversationRepository
from storage.repositories.privacy import PrivacyRepository
from storage.repositories.users import TelegramUser
from storage.shared_state import MemoryState, RedisState
from storage.token_bucket import MemoryBuckets, RedisBuckets
from tests.conftest import REDIS_URL
from tests.privacy_checks import redis_text, traces

ALICE, BOB = TelegramUser(8123456789, "alice_zq_priv"), TelegramUser(8987654321, "bob")
GROUP = -1008123456
BOT_ID = 42


def entry(question_id: int, chat_id: int, user_id: int, order: int,
          thread_id: int | None = None, prompt: str = "my own secret prompt zebrafrost",
          ) -> Queued:
    return Queued(question_id=question_id, chat_id=chat_id, chat_type="private"
                  if chat_id > 0 else "supergroup", thread_id=thread_id, tg_message_id=order,
                  lang="en", model_id=None, arena=False, user_id=user_id, chat_row_id=1,
                  order=order, system_prompt=prompt)


@pytest.fixture(params=["memory", "redis"])
async def shared(request, redis_prefix) -> AsyncIterator[dict]:
    if request.param == "memory":
        yield {"queues": MemoryQueues(), "buckets": MemoryBuckets(), "state": MemoryState(),
               "fsm": MemoryStorage(), "redis": None}
        return
    redis = Redis.from_url(REDIS_URL)
    fsm = RedisStorage(Redis.from_url(REDIS_URL),
                       key_builder=DefaultKeyBuilder(prefix=f"{redis_prefix}:fsm",
                                                     with_bot_id=True))
    yield {"queues": RedisQueues(redis, redis_prefix), "state": RedisState(redis, redis_prefix),
           "buckets": RedisBuckets(redis, redis_prefix), "fsm": fsm, "redis": redis}
    await fsm.close()
    await redis.aclose()


async def test_forgetting_clears_the_person_out_of_shared_state(shared, database_url,
                                                                 redis_prefix):
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    conversations = ConversationRepository(sessionmaker)
    asked = await conversations.ask(ALICE, (ALICE.telegram_id, "private", None), None, "q", 1)
    group_q = await conversations.ask(ALICE, (GROUP, "supergroup", "g"), 5, "q", 2)
    bob_q = await conversations.ask(BOB, (GROUP, "supergroup", "g"), 5, "q", 3)
    alice_id, bob_id = asked.user.id, bob_q.user.id
    queues, buckets, state, fsm = (shared[k] for k in ("queues", "buckets", "state", "fsm"))
    await queues.push(str(ALICE.telegram_id), 1, entry(asked.question.id, ALICE.telegram_id,
                                                      alice_id, 1).dumps())
    await queues.take(str(ALICE.telegram_id))  # being answered: the current entry
    await queues.push(f"{ALICE.telegram_id}:9", 2, entry(asked.question.id, ALICE.telegram_id,
                                                         alice_id, 2, 9).dumps())
    group = f"{GROUP}:5"
    bobs = entry(bob_q.question.id, GROUP, bob_id, 3, 5, "the group's prompt").dumps()
    await queues.push(group, 2, entry(group_q.question.id, GROUP, alice_id, 2, 5).dumps())
    await queues.push(group, 3, bobs)
    await queues.stash(f"edit:{group_q.question.id}", "edited zebrafrost", 600)
    await queues.stash(f"edit:{bob_q.question.id}", "bob's edit", 600)
    for kind in ("ask", "press"):
        await buckets.take(f"{kind}:{ALICE.telegram_id}", 5, 1.0)
    await state.claim(f"limit-told:{ALICE.telegram_id}", 60)
    for chat, thread in ((ALICE.telegram_id, None), (GROUP, 5)):
        key = StorageKey(bot_id=BOT_ID, chat_id=chat, user_id=ALICE.telegram_id,
                         thread_id=thread)
        await fsm.set_state(key, "EditingAnswer:waiting")
        await fsm.set_data(key, {"answer": 1})
    if shared["redis"] is not None:
        assert traces(await redis_text(REDIS_URL, redis_prefix), ALICE.telegram_id, "zebrafrost")

    stops = StopSignals(shared["redis"], redis_prefix)
    await stops.start()
    streaming = asyncio.Event()
    try:
        with stops.watch_asker(alice_id, streaming):
            forgetting = Forgetting(PrivacyRepository(sessionmaker), stops, queues, buckets,
                                    state, fsm)
            assert await forgetting.forget(BOT_ID, ALICE.telegram_id) is not None
            assert streaming.is_set()  # her answer being written was stopped
            assert await forgetting.forget(BOT_ID, ALICE.telegram_id) is None
    finally:
        await stops.aclose()
        await engine.dispose()

    assert await queues.names() == [group]
    assert await queues.waiting(group) == [bobs]
    assert await queues.take(str(ALICE.telegram_id)) == (None, False)
    assert await queues.unstash(f"edit:{group_q.question.id}") is None
    assert await queues.unstash(f"edit:{bob_q.question.id}") == "bob's edit"
    assert (await buckets.peek(f"ask:{ALICE.telegram_id}", 5, 1.0)).tokens == 5
    assert await state.claim(f"limit-told:{ALICE.telegram_id}", 60)  # free again
    await state.unclaim(f"limit-told:{ALICE.telegram_id}")
    for chat, thread in ((ALICE.telegram_id, None), (GROUP, 5)):
        key = StorageKey(bot_id=BOT_ID, chat_id=chat, user_id=ALICE.telegram_id,
                         thread_id=thread)
        assert await fsm.get_state(key) is None and await fsm.get_data(key) == {}
    if shared["redis"] is not None:
        left = traces(await redis_text(REDIS_URL, redis_prefix), ALICE.telegram_id,
                      "zebrafrost")
        assert left == []
