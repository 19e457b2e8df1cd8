"""Question queues, in-process and on Redis: the same behaviour (order by the caller's number,
a current entry kept until done and returned again if unfinished, clear, the index of names,
one-time stashes), and a Redis outage that never reaches the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from storage.question_queue import MemoryQueues, RedisQueues
from tests.conftest import REDIS_URL
from tests.redis_server import free_port


@pytest.fixture(params=["memory", "redis"])
async def queues(request, redis_prefix) -> AsyncIterator[MemoryQueues | RedisQueues]:
    if request.param == "memory":
        yield MemoryQueues()
        return
    redis = Redis.from_url(REDIS_URL)
    yield RedisQueues(redis, redis_prefix)
    await redis.aclose()


async def test_entries_wait_in_order_and_one_is_current_until_done(queues):
    assert await queues.push("7", 30, "c") == 1
    assert await queues.push("7", 10, "a") == 1  # sent earlier, stored later: goes first
    assert await queues.push("7", 20, "b") == 2
    assert await queues.push("-5:3", 1, "other topic") == 1
    assert await queues.waiting("7") == ["a", "b", "c"]
    assert await queues.names() == ["-5:3", "7"]
    assert await queues.take("7") == ("a", False)
    assert await queues.waiting("7") == ["b", "c"]
    # Not done (the process ended mid-answer): the same entry comes back first.
    assert await queues.take("7") == ("a", True)
    await queues.done("7")
    assert await queues.take("7") == ("b", False)
    # Done with "b" and on to the next in one step.
    assert await queues.take("7", finished=True) == ("c", False)
    await queues.push("7", 40, "d")
    await queues.done("7")
    assert await queues.clear("7") == ["d"]
    assert await queues.take("7") == (None, False)
    assert await queues.names() == ["-5:3"]


async def test_depth_counts_what_waits_in_every_queue_not_the_current_ones(queues):
    assert await queues.depth() == 0
    for order, entry in enumerate("abc"):
        await queues.push("7", order, entry)
    await queues.push("-5:3", 1, "x")
    assert await queues.depth() == 4
    await queues.take("7")  # "a" is being answered: no longer waiting
    assert await queues.depth() == 3
    await queues.clear("7")
    await queues.take("-5:3")
    assert await queues.depth() == 0


async def test_a_stash_is_taken_once(queues):
    await queues.stash("edit:1", "old", 60)
    await queues.stash("edit:1", "new", 60)
    assert await queues.unstash("edit:1") == "new"
    assert await queues.unstash("edit:1") is None


async def test_without_redis_the_queue_lives_in_this_process():
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    queues = RedisQueues(redis, "nowhere")
    try:
        assert await queues.push("1", 2, "b") == 1
        assert await queues.push("1", 1, "a") == 1
        assert await queues.waiting("1") == ["a", "b"]
        assert await queues.take("1") == ("a", False)
        await queues.done("1")
        await queues.stash("edit:1", "x", 60)
        assert await queues.unstash("edit:1") == "x"
        assert await queues.clear("1") == ["b"]
    finally:
        await redis.aclose()
