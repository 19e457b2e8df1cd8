"""FSM storage that survives Redis being unreachable: the only state is ✏️ edit mode, and
losing it for a while is better than failing every message (aiogram reads the state of each
update before any handler runs)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
_UNREACHABLE = (RedisError, OSError)


class ResilientStorage(BaseStorage):
    """Wraps another storage: reads fail as "no state", writes fail silently (logged)."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        try:
            await self.inner.set_state(key, state)
        except _UNREACHABLE as exc:
            log.warning("FSM storage unreachable (%s); state not saved", exc)

    async def get_state(self, key: StorageKey) -> str | None:
        try:
            return await self.inner.get_state(key)
        except _UNREACHABLE as exc:
            log.warning("FSM storage unreachable (%s); no state", exc)
            return None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        try:
            await self.inner.set_data(key, data)
        except _UNREACHABLE as exc:
            log.warning("FSM storage unreachable (%s); data not saved", exc)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        try:
            return await self.inner.get_data(key)
        except _UNREACHABLE as exc:
            log.warning("FSM storage unreachable (%s); no data", exc)
            return {}

    async def close(self) -> None:
        await self.inner.close()
