"""Keeps every bot process's model registry in step with admins' changes.

Changes are written to the database, then announced on a Redis channel; each process reloads
from the database when it hears one (and every `refresh` seconds, in case a message was lost).
Without Redis there is one process, which reloads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from inference.registry import ModelRegistry, Override
from storage.outage import describe, unavailable
from storage.repositories.admin import AdminRepository

log = logging.getLogger(__name__)
# After Postgres or Redis was found unreachable, the next try waits this long (seconds).
OUTAGE_PAUSE = 3.0


class ModelSync:
    def __init__(self, registry: ModelRegistry, admin: AdminRepository, redis: Redis | None,
                 prefix: str, refresh: float = 30.0) -> None:
        self.registry = registry
        self.admin = admin
        self.redis = redis
        self.channel = f"{prefix}:models:changed"
        self.refresh = refresh
        self._task: asyncio.Task | None = None

    async def reload(self) -> None:
        rows = await self.admin.overrides()
        self.registry.apply([Override(r.model_id, r.spec, r.enabled, r.removed) for r in rows])
        await self.registry.warm()

    async def changed(self) -> None:
        """Call after writing a change: this process reloads now, the others on the message."""
        await self.reload()
        if self.redis is not None:
            try:
                await self.redis.publish(self.channel, "reload")
            except (RedisError, OSError) as exc:  # the others catch up on their next refresh
                log.warning("could not announce a model change (%s); other processes reload "
                            "within %.0f s", exc, self.refresh)

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                if self.redis is None:
                    await asyncio.sleep(self.refresh)
                    await self.reload()
                    continue
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self.reload()  # anything missed while (re)subscribing
                    while True:
                        # A change message, or `refresh` seconds of quiet: reload either way.
                        await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=self.refresh
                        )
                        await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):  # an outage: one line, and no hurry
                    log.warning("model sync paused: %s; retrying", describe(exc))
                    await asyncio.sleep(OUTAGE_PAUSE)
                else:
                    log.exception("model sync failed; retrying")
                    await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
