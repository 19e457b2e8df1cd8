"""Drops updates Telegram delivers twice (it re-sends after timeouts and non-2xx answers),
and callback queries a client sends twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update

from storage.shared_state import SharedState

SEEN_TTL = 24 * 3600.0


class DedupMiddleware(BaseMiddleware):
    def __init__(self, state: SharedState) -> None:
        self.state = state

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        bot: Bot = data["bot"]
        if isinstance(event, Update):
            keys = [f"update:{bot.id}:{event.update_id}"]
            if event.callback_query is not None:  # a client may send the same query again
                keys.append(f"callback:{bot.id}:{event.callback_query.id}")
            for key in keys:
                if not await self.state.claim(key, SEEN_TTL):
                    return None
        return await handler(event, data)
