"""Outermost update middleware: counts the update by type and starts its log context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update

from bot.observability.logs import enter_update
from bot.observability.metrics import Metrics


class ObserveUpdates(BaseMiddleware):
    """Runs inside aiogram's own context middleware (which finds the update's chat) and
    before deduplication: every update Telegram sends is counted, repeats included."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update):
            try:
                kind = event.event_type
            except Exception:  # a type this aiogram does not know
                kind = "unknown"
            self.metrics.update(kind)
            chat = data.get("event_chat")
            enter_update(event.update_id, chat.id if isinstance(chat, Chat) else None)
        return await handler(event, data)
