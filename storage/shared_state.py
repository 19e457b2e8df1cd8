"""State shared by every bot process: Redis when configured, an in-process stand-in otherwise."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from redis.asyncio import Redis


class SharedState(Protocol):
    async def claim(self, key: str, ttl: float) -> bool:
        """Set `key` if absent (for `ttl` seconds). True when this caller got it."""

    async def release(self, key: str) -> None: ...

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        """Count one event in a sliding window; 0 if allowed, else seconds until a slot frees."""

    async def aclose(self) -> None: ...


class MemoryState:
    def __init__(self) -> None:
        self._keys: dict[str, float] = {}
        self._windows: dict[str, list[float]] = {}
        self._lock = asyncio.Lock()

    async def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        async with self._lock:
            if self._keys.get(key, 0) > now:
                return False
            self._keys[key] = now + ttl
            return True

    async def release(self, key: str) -> None:
        self._keys.pop(key, None)

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


class RedisState:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._take_slot = redis.register_script(_TAKE_SLOT)
        self._counter = 0

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def claim(self, key: str, ttl: float) -> bool:
        return bool(await self._redis.set(self._key(key), "1", nx=True, px=int(ttl * 1000)))

    async def release(self, key: str) -> None:
        await self._redis.delete(self._key(key))

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        self._counter += 1
        member = f"{time.time_ns()}:{id(self)}:{self._counter}"
        wait = await self._take_slot(
            keys=[self._key(key)], args=[time.time(), window, limit, member]
        )
        return float(wait)

    async def aclose(self) -> None:
        await self._redis.aclose()
