"""Token buckets per key (a user): `capacity` tokens, refilled at `rate` per second; a message
that would call a model takes one. Shared by every bot process through Redis (one atomic Lua
script, Redis's own clock, so processes on different hosts agree); in this process when Redis
is not configured, and also while it is unreachable (a user's turn never fails because Redis
is down: the limit then holds per process, which is looser but never open-ended).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_UNREACHABLE = (RedisError, OSError)
# The in-process buckets forget full ones beyond this many keys (they hold nothing).
_MEMORY_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class BucketState:
    """After a take (or a peek): the tokens left and, if the take was refused, the seconds
    until a token is there (0: taken)."""

    tokens: float
    wait: float

    @property
    def allowed(self) -> bool:
        return self.wait <= 0


class TokenBuckets(Protocol):
    async def take(self, key: str, capacity: int, rate: float) -> BucketState:
        """Take one token from `key`'s bucket if it has one."""

    async def peek(self, key: str, capacity: int, rate: float) -> BucketState:
        """The bucket as it is now (nothing taken); `wait`: seconds until it is full."""

    async def drop(self, key: str) -> None:
        """Forget `key`'s bucket (it starts full again); never raises."""


def refill(tokens: float, elapsed: float, capacity: int, rate: float) -> float:
    return min(float(capacity), tokens + max(0.0, elapsed) * rate)


class MemoryBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, when)

    def _now(self, key: str, capacity: int, rate: float) -> tuple[float, float]:
        now = self._clock()
        tokens, when = self._buckets.get(key, (float(capacity), now))
        return refill(tokens, now - when, capacity, rate), now

    async def take(self, key: str, capacity: int, rate: float) -> BucketState:
        tokens, now = self._now(key, capacity, rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        if len(self._buckets) >= _MEMORY_KEYS and key not in self._buckets:
            self._forget_full(capacity, rate, now)
        self._buckets[key] = (tokens, now)
        return BucketState(tokens, wait)

    async def peek(self, key: str, capacity: int, rate: float) -> BucketState:
        tokens, _ = self._now(key, capacity, rate)
        return BucketState(tokens, (capacity - tokens) / rate)

    async def drop(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _forget_full(self, capacity: int, rate: float, now: float) -> None:
        for key, (tokens, when) in list(self._buckets.items()):
            if refill(tokens, now - when, capacity, rate) >= capacity:
                del self._buckets[key]


# KEYS[1]: the bucket (a hash: tokens, ts). ARGV: capacity, rate per second, cost (1 to take,
# 0 to peek). Returns {tokens left, seconds to wait} as strings (Lua numbers would be
# truncated to integers on the way out). The key expires once the bucket would be full.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
if cost == 0 then
  return {tostring(tokens), tostring((capacity - tokens) / rate)}
end
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {tostring(tokens), tostring(wait)}
"""


class RedisBuckets:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._script = redis.register_script(_TAKE)
        self._prefix = prefix
        self._local = MemoryBuckets()

    async def _run(self, key: str, capacity: int, rate: float, cost: int) -> BucketState:
        try:
            tokens, wait = await self._script(keys=[f"{self._prefix}:bucket:{key}"],
                                              args=[capacity, rate, cost])
        except _UNREACHABLE as exc:
            log.warning("Redis unreachable (%s); rate limit of %s kept in this process",
                        exc, key)
            local = self._local.take if cost else self._local.peek
            return await local(key, capacity, rate)
        return BucketState(float(tokens), float(wait))

    async def take(self, key: str, capacity: int, rate: float) -> BucketState:
        return await self._run(key, capacity, rate, 1)

    async def peek(self, key: str, capacity: int, rate: float) -> BucketState:
        return await self._run(key, capacity, rate, 0)

    async def drop(self, key: str) -> None:
        await self._local.drop(key)
        try:
            await self._redis.delete(f"{self._prefix}:bucket:{key}")
        except _UNREACHABLE as exc:  # it expires once the bucket would be full
            log.warning("Redis unreachable (%s); bucket %s left to expire", exc, key)


__all__ = ["BucketState", "MemoryBuckets", "RedisBuckets", "TokenBuckets"]
