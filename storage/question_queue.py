"""Per-conversation queues of questions waiting for an answer, shared by every bot process:
Redis when configured, an in-process stand-in otherwise (same behaviour within one process).

A queue `name` (a chat, or a topic of it) holds opaque entries (the caller's JSON) ordered by
a number the caller gives (the stored question's id: the order the questions were stored in,
whichever process queued them first); `take` moves the first one to the queue's "current"
slot, `done` clears it. An entry whose answer was interrupted (the process died) stays
current, and the next `take` returns it again.
An index of names with something pending lets a starting process find queues left behind.
Short-lived "stashes" hold a value until it is taken once (an edited question's text until the
user asks for it to be answered). Redis being unreachable never fails a turn: the operation
is done in this process instead.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
_UNREACHABLE = (RedisError, OSError)
T = TypeVar("T")


class QueueStore(Protocol):
    async def push(self, name: str, order: int, entry: str) -> int:
        """Add `entry` at `order`; returns its place among those waiting in `name` (1: next)."""

    async def waiting(self, name: str) -> list[str]:
        """The entries waiting in `name`, first first (not the current one)."""

    async def take(self, name: str, *, finished: bool = False) -> tuple[str | None, bool]:
        """(entry, resumed): the current entry if one was left unfinished (resumed=True), else
        the first waiting one, made current; (None, False) when nothing is pending.
        `finished`: the current entry is done first (`done` and `take` in one step)."""

    async def done(self, name: str) -> None:
        """The current entry of `name` is finished."""

    async def clear(self, name: str) -> list[str]:
        """Drop the waiting entries of `name` (not the current one); returns them."""

    async def remove(self, name: str, entries: list[str]) -> int:
        """Drop these waiting entries of `name` ("forget me"); returns how many were there."""

    async def drop(self, name: str) -> None:
        """Drop the queue `name` whole: what waits, its current entry, its index entry."""

    async def drop_stashes(self, keys: list[str]) -> None:
        """Drop these stashes (never raises)."""

    async def names(self) -> list[str]:
        """Queues that may have something pending."""

    async def stash(self, key: str, value: str, ttl: float) -> None:
        """Keep `value` under `key` for `ttl` seconds (replacing an older one)."""

    async def unstash(self, key: str) -> str | None:
        """Take the value under `key` (once: a second call gets None)."""

    async def depth(self) -> int:
        """Entries waiting in every queue (not the current ones): the metrics' queue depth."""

    async def aclose(self) -> None: ...


class MemoryQueues:
    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[int, str]]] = {}
        self._current: dict[str, str] = {}
        self._stash: dict[str, tuple[str, float]] = {}

    async def push(self, name: str, order: int, entry: str) -> int:
        queue = self._queues.setdefault(name, [])
        bisect.insort(queue, (order, entry))
        return bisect.bisect_right(queue, (order, entry))

    async def waiting(self, name: str) -> list[str]:
        return [entry for _, entry in self._queues.get(name, ())]

    async def take(self, name: str, *, finished: bool = False) -> tuple[str | None, bool]:
        if finished:
            self._current.pop(name, None)
        if name in self._current:
            return self._current[name], True
        queue = self._queues.get(name)
        if not queue:
            self._queues.pop(name, None)
            return None, False
        entry = self._current[name] = queue.pop(0)[1]
        return entry, False

    async def done(self, name: str) -> None:
        self._current.pop(name, None)

    async def clear(self, name: str) -> list[str]:
        return [entry for _, entry in self._queues.pop(name, ())]

    async def remove(self, name: str, entries: list[str]) -> int:
        queue = self._queues.get(name, [])
        kept = [item for item in queue if item[1] not in entries]
        self._queues[name] = kept
        return len(queue) - len(kept)

    async def drop(self, name: str) -> None:
        self._queues.pop(name, None)
        self._current.pop(name, None)

    async def drop_stashes(self, keys: list[str]) -> None:
        for key in keys:
            self._stash.pop(key, None)

    async def names(self) -> list[str]:
        return sorted({*self._queues, *self._current})

    async def stash(self, key: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        self._stash = {k: v for k, v in self._stash.items() if v[1] > now}
        self._stash[key] = (value, now + ttl)

    async def unstash(self, key: str) -> str | None:
        found = self._stash.pop(key, None)
        return found[0] if found is not None and found[1] > time.monotonic() else None

    async def depth(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def aclose(self) -> None:
        return None


# A queue is a sorted set (score: the caller's order), its current entry a string.
_PUSH = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
"""
_TAKE = """
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
local current = redis.call('GET', KEYS[2])
if current then return {current, 1} end
local first = redis.call('ZPOPMIN', KEYS[1])
if #first == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
  return false
end
redis.call('SET', KEYS[2], first[1])
return {first[1], 0}
"""
_CLEAR = """
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return entries
"""


class RedisQueues:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._push = redis.register_script(_PUSH)
        self._take = redis.register_script(_TAKE)
        self._clear = redis.register_script(_CLEAR)
        self._local = MemoryQueues()  # while Redis is unreachable

    def _keys(self, name: str) -> tuple[str, str, str]:
        return (f"{self._prefix}:queue:{name}", f"{self._prefix}:queue-now:{name}",
                f"{self._prefix}:queues")

    async def _either(self, what: str, remote: Callable[[], Awaitable[T]],
                      local: Callable[[], Awaitable[T]]) -> T:
        try:
            return await remote()
        except _UNREACHABLE as exc:
            log.warning("Redis unreachable (%s); %s done in this process only", exc, what)
            return await local()

    async def push(self, name: str, order: int, entry: str) -> int:
        queue, _, index = self._keys(name)
        return int(await self._either(
            f"queueing in {name}",
            lambda: self._push(keys=[queue, index], args=[order, entry, name]),
            lambda: self._local.push(name, order, entry)))

    async def waiting(self, name: str) -> list[str]:
        async def remote() -> list[str]:
            found = await self._redis.zrange(self._keys(name)[0], 0, -1)
            return [e.decode() for e in found] + await self._local.waiting(name)

        return await self._either(f"reading {name}", remote, lambda: self._local.waiting(name))

    async def take(self, name: str, *, finished: bool = False) -> tuple[str | None, bool]:
        if finished and name in self._local._current:  # the current entry was a local one
            await self._local.done(name)
            finished = False
        # Entries queued here while Redis was away are answered first: they are older.
        entry, resumed = await self._local.take(name)
        if entry is not None:
            if finished:
                await self.done(name)
            return entry, resumed

        async def remote() -> tuple[str | None, bool]:
            found = await self._take(keys=list(self._keys(name)),
                                     args=[name, "1" if finished else "0"])
            if not found:
                return None, False
            return found[0].decode(), bool(found[1])

        return await self._either(f"taking from {name}", remote,
                                  lambda: self._local.take(name))

    async def done(self, name: str) -> None:
        if name in self._local._current:
            await self._local.done(name)
            return
        with contextlib.suppress(*_UNREACHABLE):  # it expires with nothing; resumed if kept
            await self._redis.delete(self._keys(name)[1])

    async def clear(self, name: str) -> list[str]:
        async def remote() -> list[str]:
            found = await self._clear(keys=[self._keys(name)[0]])
            return [e.decode() for e in found]

        local = await self._local.clear(name)
        return local + await self._either(f"clearing {name}", remote,
                                          lambda: self._local.clear(name))

    async def remove(self, name: str, entries: list[str]) -> int:
        if not entries:
            return 0
        local = await self._local.remove(name, entries)
        return local + int(await self._either(
            f"removing from {name}", lambda: self._redis.zrem(self._keys(name)[0], *entries),
            lambda: self._local.remove(name, entries)))

    async def drop(self, name: str) -> None:
        await self._local.drop(name)
        queue, current, index = self._keys(name)

        async def remote() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(queue, current)
                pipe.srem(index, name)
                await pipe.execute()

        await self._either(f"dropping {name}", remote, lambda: self._local.drop(name))

    async def drop_stashes(self, keys: list[str]) -> None:
        await self._local.drop_stashes(keys)
        for start in range(0, len(keys), 500):
            chunk = [f"{self._prefix}:stash:{key}" for key in keys[start:start + 500]]
            try:
                await self._redis.delete(*chunk)
            except _UNREACHABLE as exc:  # they expire (EDIT_TTL)
                log.warning("Redis unreachable (%s); %d stashes left to expire", exc,
                            len(chunk))
                return

    async def names(self) -> list[str]:
        async def remote() -> list[str]:
            found = await self._redis.smembers(self._keys("")[2])
            return sorted({n.decode() for n in found} | set(await self._local.names()))

        return await self._either("listing queues", remote, self._local.names)

    async def stash(self, key: str, value: str, ttl: float) -> None:
        await self._either(
            f"stashing {key}",
            lambda: self._redis.set(f"{self._prefix}:stash:{key}", value, px=int(ttl * 1000)),
            lambda: self._local.stash(key, value, ttl))

    async def unstash(self, key: str) -> str | None:
        local = await self._local.unstash(key)
        if local is not None:
            return local

        async def remote() -> str | None:
            found = await self._redis.getdel(f"{self._prefix}:stash:{key}")
            return found.decode() if found is not None else None

        return await self._either(f"unstashing {key}", remote, lambda: self._local.unstash(key))

    async def depth(self) -> int:
        """One SMEMBERS and one pipelined ZCARD per queue listed (read at scrape time);
        raises if Redis is unreachable (the depth is then unknown, not this process's)."""
        names = await self._redis.smembers(self._keys("")[2])
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self._keys(name.decode())[0])
            sizes = await pipe.execute()
        return sum(sizes) + await self._local.depth()

    async def aclose(self) -> None:
        return None  # the Redis client is the shared state's, closed with it
