"""Stop buttons: a draft's stop press reaches the generation that owns the draft.

With several bot processes (webhook replicas) the press may reach another process than the
one streaming the answer: it is then published on a Redis channel, and the owner stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage.outage import describe, unavailable

log = logging.getLogger(__name__)

# A long answer's later parts use draft ids above the first one.
PARTS_PER_ANSWER = 64
LISTEN_SLICE = 1.0  # seconds each wait for a press lasts
OUTAGE_PAUSE = 3.0  # between tries to subscribe again while Redis is unreachable


class StopSignals:
    """(chat id, draft id) → stop event for the answers this process streams; with `redis`,
    presses for answers streamed elsewhere are passed on to the other processes. Answers are
    also known by their asker's stored id, so "forget me" stops all of that person's."""

    def __init__(self, redis: Redis | None = None, prefix: str = "chatmux") -> None:
        self._events: dict[tuple[int, int], asyncio.Event] = {}
        self._askers: dict[int, set[asyncio.Event]] = {}
        self.redis = redis
        self.channel = f"{prefix}:stops"
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @contextlib.contextmanager
    def watch(self, chat_id: int, draft_id: int) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events[(chat_id, draft_id)] = event
        try:
            yield event
        finally:
            self._events.pop((chat_id, draft_id), None)

    @contextlib.contextmanager
    def watch_asker(self, user_id: int | None, event: asyncio.Event) -> Iterator[None]:
        """While in the block, `stop_asker(user_id)` sets `event` (a stream's stop)."""
        if user_id is None:
            yield
            return
        self._askers.setdefault(user_id, set()).add(event)
        try:
            yield
        finally:
            events = self._askers.get(user_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._askers[user_id]

    def stop_asker_here(self, user_id: int) -> int:
        """Stop the answers this process streams to `user_id`'s questions; how many."""
        events = self._askers.get(user_id, set())
        for event in events:
            event.set()
        return len(events)

    async def stop_asker(self, user_id: int) -> None:
        """Stop every answer to `user_id`'s questions, in this process and (with Redis) in the
        others (best effort: an answer finishing elsewhere finds its question gone)."""
        self.stop_asker_here(user_id)
        if self.redis is None:
            return
        try:
            await self.redis.publish(self.channel, f"asker:{user_id}")
        except (RedisError, OSError) as exc:
            log.warning("could not pass a stop on to the other processes (%s)", exc)

    def stop_here(self, chat_id: int, draft_id: int) -> bool:
        """Stop the answer if this process streams it; whether it did."""
        for (chat, first), event in self._events.items():
            if chat == chat_id and first <= draft_id < first + PARTS_PER_ANSWER:
                event.set()
                return True
        return False

    async def stop(self, chat_id: int, draft_id: int) -> bool:
        """Stop the answer wherever it streams. True if stopped here or if another process
        heard the press (it stops the answer if it streams it)."""
        if self.stop_here(chat_id, draft_id):
            return True
        if self.redis is None:
            return False
        try:
            heard = await self.redis.publish(self.channel, f"{chat_id}:{draft_id}")
        except (RedisError, OSError) as exc:
            log.warning("could not pass a stop press on to the other processes (%s)", exc)
            return False
        return heard > 1  # this process hears its own message too

    async def start(self) -> None:
        """Listen for presses other processes pass on (with Redis; idempotent)."""
        if self.redis is None or self._listener is not None:
            return
        self._listener = asyncio.create_task(self._listen(self.redis))
        with contextlib.suppress(TimeoutError):  # it keeps trying in the background
            await asyncio.wait_for(self._subscribed.wait(), 5.0)

    async def _listen(self, redis: Redis) -> None:
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    while True:
                        # Waits within the client's socket timeout (a blocking read would
                        # time out and drop the subscription).
                        message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                           timeout=LISTEN_SLICE)
                        if message is not None and message.get("type") == "message":
                            self._heard(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage = unavailable(exc)  # Redis down: one line per try, and no hurry
                log.warning("stop press channel lost (%s); resubscribing",
                            describe(exc) if outage else exc)
                await asyncio.sleep(OUTAGE_PAUSE if outage else 1.0)

    def _heard(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        if text.startswith("asker:"):
            with contextlib.suppress(ValueError):
                self.stop_asker_here(int(text.removeprefix("asker:")))
            return
        chat, _, draft = text.partition(":")
        with contextlib.suppress(ValueError):
            self.stop_here(int(chat), int(draft))

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
