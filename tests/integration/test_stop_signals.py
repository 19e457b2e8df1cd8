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


async def test_presses_are_heard_past_the_clients_socket_timeout():
    """The bot's Redis clients time reads out (REDIS_TIMEOUT): a quiet channel must not drop
    the subscription, or a press in the gap would be lost."""
    prefix = f"chatmux-test-{uuid.uuid4().hex[:8]}"
    a = StopSignals(Redis.from_url(REDIS_URL, socket_timeout=0.3), prefix)
    b = StopSignals(Redis.from_url(REDIS_URL, socket_timeout=0.3), prefix)
    try:
        await a.start()
        await b.start()
        await asyncio.sleep(1.0)  # quiet for longer than the socket timeout
        with b.watch(7, 500) as streaming:
            assert await a.stop(7, 500)
            await asyncio.wait_for(streaming.wait(), 5)
    finally:
        for stops in (a, b):
            await stops.aclose()
            assert stops.redis is not None
            await stops.redis.aclose()
