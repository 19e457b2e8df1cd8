"""Stop presses reach the answer wherever it streams: across processes through Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from bot.streaming.stops import StopSignals
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.timeout(10)


async def test_without_redis_only_this_process_is_stopped():
    stops = StopSignals()
    with stops.watch(1, 100) as event:
        assert not await stops.stop(2, 100) and not event.is_set()
        assert await stops.stop(1, 101)  # a later part of the same answer
        assert event.is_set()
    assert not await stops.stop(1, 100)


async def test_a_press_on_one_process_stops_the_stream_on_another():
    prefix = f"chatmux-test-{uuid.uuid4().hex[:8]}"
    redis_a, redis_b = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    a, b = StopSignals(redis_a, prefix), StopSignals(redis_b, prefix)
    other = StopSignals(Redis.from_url(REDIS_URL), f"{prefix}-other")  # another bot
    try:
        await a.start()
        await b.start()
        await other.start()
        with b.watch(7, 500) as streaming, other.watch(7, 500) as elsewhere:
            assert await a.stop(7, 500)  # heard by b
            await asyncio.wait_for(streaming.wait(), 5)
        assert not elsewhere.is_set()
    finally:
        for stops in (a, b, other):
            await stops.aclose()
            assert stops.redis is not None
            await stops.redis.aclose()
