"""State shared by every bot process: Redis when configured, an in-process stand-in otherwise.

Redis being unreachable never fails a user's turn: claims and rate slots fail open, a lock is
taken in this process instead, and a lock whose release failed is released when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A lock lives this long unless renewed; its holder renews it every third of that.
LOCK_TTL = 30.0
_UNREACHABLE = (RedisError, OSError)


class SharedState(Protocol):
    async def claim(self, key: str, ttl: float) -> bool:
        """Set `key` if absent (for `ttl` seconds). True when this caller got it."""

    async def unclaim(self, key: str) -> None:
        """Drop a claim: what it guarded failed and may be tried again at once (never raises)."""

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the lock `key` for `ttl` seconds as owner `token`, if nobody holds it."""

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend the lock to `ttl` seconds from now if `token` still owns it."""

    async def release(self, key: str, token: str) -> None:
        """Free the lock if `token` owns it (compare-and-delete); never raises."""

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        """Count one event in a sliding window; 0 if allowed, else seconds until a slot frees."""

    async def aclose(self) -> None: ...


@contextlib.asynccontextmanager
async def held_lock(state: SharedState, key: str, *, wait: float, ttl: float = LOCK_TTL,
                    poll: float = 0.2) -> AsyncIterator[bool]:
    """Hold the lock `key` for the body, waiting up to `wait` seconds for it; yields False if
    it stayed busy. While held, it is renewed every ttl/3, so a crashed holder frees it within
    `ttl`; on exit it is released only if still ours."""
    token = secrets.token_hex(16)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    got = await state.acquire(key, token, ttl)
    while not got and loop.time() < deadline:
        await asyncio.sleep(poll)
        got = await state.acquire(key, token, ttl)
    if not got:
        yield False
        return
    renewing = asyncio.create_task(_keep_renewed(state, key, token, ttl))
    try:
        yield True
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await state.release(key, token)


async def _keep_renewed(state: SharedState, key: str, token: str, ttl: float) -> None:
    while True:
        await asyncio.sleep(ttl / 3)
        if not await state.renew(key, token, ttl):
            log.warning("lost the lock %s (it expired or was taken); carrying on", key)
            return


class MemoryState:
    def __init__(self) -> None:
        self._keys: dict[str, float] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # key → (owner token, expiry)
        self._windows: dict[str, list[float]] = {}
        self._lock = asyncio.Lock()

    async def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        async with self._lock:
            if self._keys.get(key, 0) > now:
                return False
            self._keys[key] = now + ttl
            return True

    async def unclaim(self, key: str) -> None:
        self._keys.pop(key, None)

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return False
        self._locks[key] = (token, now + ttl)
        return True

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        held = self._locks.get(key)
        if held is None or held[0] != token or held[1] <= time.monotonic():
            return False
        self._locks[key] = (token, time.monotonic() + ttl)
        return True

    async def release(self, key: str, token: str) -> None:
        held = self._locks.get(key)
        if held is not None and held[0] == token:
            del self._locks[key]

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        async with self._lock:
            events = [t for t in self._windows.get(key, []) if t > now - window]
            if len(events) >= limit:
                self._windows[key] = events
                return events[0] + window - now
            events.append(now)
            self._windows[key] = events
            return 0.0

    async def aclose(self) -> None:
        return None


# Sliding window in a sorted set; atomic so concurrent processes agree.
_TAKE_SLOT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""
# Owner-checked lock operations: only the token that took a lock extends or frees it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisState:
    def __init__(self, redis: Redis, prefix: str, *, retry_every: float = 0.5) -> None:
        self._redis = redis
        self._prefix = prefix
        self._take_slot = redis.register_script(_TAKE_SLOT)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._counter = 0
        # Locks taken while Redis was unreachable live here (this process only).
        self._local = MemoryState()
        self._local_tokens: set[str] = set()
        self._ttls: dict[str, float] = {}  # token → ttl, to bound a delayed release
        self._retry_every = retry_every
        self._pending: set[asyncio.Task] = set()

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def claim(self, key: str, ttl: float) -> bool:
        try:
            return bool(await self._redis.set(self._key(key), "1", nx=True, px=int(ttl * 1000)))
        except _UNREACHABLE as exc:  # fail open: a duplicate is better than a lost message
            log.warning("Redis unreachable (%s); %s not deduplicated", exc, key)
            return True

    async def unclaim(self, key: str) -> None:
        try:
            await self._redis.delete(self._key(key))
        except _UNREACHABLE as exc:  # it expires by itself
            log.warning("Redis unreachable (%s); %s left to expire", exc, key)

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        try:
            got = bool(await self._redis.set(self._key(key), token, nx=True,
                                             px=int(ttl * 1000)))
        except _UNREACHABLE as exc:
            log.warning("Redis unreachable (%s); lock %s taken in this process only", exc, key)
            got = await self._local.acquire(key, token, ttl)
            if got:
                self._local_tokens.add(token)
            return got
        if got:
            self._ttls[token] = ttl
        return got

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        if token in self._local_tokens:
            return await self._local.renew(key, token, ttl)
        try:
            return bool(await self._renew(keys=[self._key(key)], args=[token, int(ttl * 1000)]))
        except _UNREACHABLE as exc:  # unknown: keep going, the next renewal may get through
            log.warning("Redis unreachable (%s); lock %s not renewed", exc, key)
            return True

    async def release(self, key: str, token: str) -> None:
        if token in self._local_tokens:
            self._local_tokens.discard(token)
            await self._local.release(key, token)
            return
        ttl = self._ttls.pop(token, LOCK_TTL)
        try:
            await self._release(keys=[self._key(key)], args=[token])
        except _UNREACHABLE as exc:
            # The key may survive the outage (a persisted Redis): free it once Redis is back,
            # rather than leave the chat busy until the key expires.
            log.warning("Redis unreachable (%s); lock %s will be released when it is back",
                        exc, key)
            task = asyncio.create_task(self._release_later(key, token, ttl))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _release_later(self, key: str, token: str, ttl: float) -> None:
        deadline = time.monotonic() + ttl  # by then it has expired anyway
        while time.monotonic() < deadline:
            await asyncio.sleep(self._retry_every)
            try:
                await self._release(keys=[self._key(key)], args=[token])
            except _UNREACHABLE:
                continue
            log.info("lock %s released after Redis came back", key)
            return

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        self._counter += 1
        member = f"{time.time_ns()}:{id(self)}:{self._counter}"
        try:
            wait = await self._take_slot(
                keys=[self._key(key)], args=[time.time(), window, limit, member]
            )
        except _UNREACHABLE as exc:  # fail open: Telegram's own 429s still pace us
            log.warning("Redis unreachable (%s); %s not rate-limited", exc, key)
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()
