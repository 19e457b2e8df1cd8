"""SharedState, in-process and on Redis: owned locks with a renewed expiry, and Redis outages
that never reach the caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from storage.shared_state import MemoryState, RedisState, held_lock
from tests.conftest import REDIS_URL
from tests.redis_server import free_port


@pytest.fixture(params=["memory", "redis"])
async def state(request, redis_prefix) -> AsyncIterator[MemoryState | RedisState]:
    shared = (MemoryState() if request.param == "memory"
              else RedisState(Redis.from_url(REDIS_URL), redis_prefix))
    yield shared
    await shared.aclose()


async def test_only_the_owner_renews_or_releases_a_lock(state):
    assert await state.acquire("gen:1", "mine", 5)
    assert not await state.acquire("gen:1", "theirs", 5)
    assert not await state.renew("gen:1", "theirs", 5)
    await state.release("gen:1", "theirs")  # not theirs to free
    assert not await state.acquire("gen:1", "theirs", 5)
    assert await state.renew("gen:1", "mine", 5)
    await state.release("gen:1", "mine")
    assert await state.acquire("gen:1", "theirs", 5)


async def test_an_unrenewed_lock_expires_and_the_old_owner_cannot_free_the_new_one(state):
    assert await state.acquire("gen:2", "crashed", 0.2)
    await asyncio.sleep(0.3)
    assert await state.acquire("gen:2", "next", 5)
    await state.release("gen:2", "crashed")  # a late release must not free "next"'s lock
    assert not await state.renew("gen:2", "crashed", 5)
    assert not await state.acquire("gen:2", "third", 5)


async def test_a_held_lock_is_renewed_while_in_use(state):
    async with held_lock(state, "gen:3", wait=0, ttl=0.3) as got:
        assert got
        await asyncio.sleep(0.8)  # well past the ttl: renewed meanwhile
        assert not await state.acquire("gen:3", "other", 5)
    assert await state.acquire("gen:3", "other", 5)  # released on exit


async def test_waiting_for_a_busy_lock(state):
    assert await state.acquire("gen:4", "holder", 5)
    async with held_lock(state, "gen:4", wait=0.3, poll=0.05) as got:
        assert not got
    await state.release("gen:4", "holder")
    async with held_lock(state, "gen:4", wait=0.3, poll=0.05) as got:
        assert got


async def test_unreachable_redis_fails_open():
    # Nothing listens on this port: every call fails to connect.
    state = RedisState(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"), "down")
    try:
        assert await state.claim("update:1", 60)  # not deduplicated, but processed
        assert await state.take_slot("edits:1", 1, 60) == 0.0
        assert await state.take_slot("edits:1", 1, 60) == 0.0
        # Locks fall back to this process: still exclusive here.
        async with held_lock(state, "gen:5", wait=0) as got:
            assert got
            async with held_lock(state, "gen:5", wait=0.1, poll=0.05) as second:
                assert not second
        async with held_lock(state, "gen:5", wait=0) as got:
            assert got
    finally:
        await state.aclose()
