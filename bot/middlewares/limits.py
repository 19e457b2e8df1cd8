"""Outer middlewares (they run before any filter or handler, so nothing is stored):

- `BannedUsers`: a banned user's messages and edits get no answer at all (silence says
  less to someone probing the bot than a reply would); their button presses get one toast,
  "You are blocked", and do nothing (a vote is neither stored nor counted).
- `PressFlood`: button presses beyond a generous per-user rate get a toast and do nothing
  (see `bot.limits`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.types import User as TgUser

from bot.limits import Limits
from bot.texts import lang_of, t

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class BannedUsers(BaseMiddleware):
    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        if sender is None or not self.limits.is_banned(sender.id):
            return await handler(event, data)
        if isinstance(event, CallbackQuery):
            with contextlib.suppress(TelegramAPIError):
                await event.answer(t("banned", lang_of(sender.language_code)))
        return None


class PressFlood(BaseMiddleware):
    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        if isinstance(event, CallbackQuery) and sender is not None:
            refusal = await self.limits.press_refusal(sender.id, lang_of(sender.language_code))
            if refusal is not None:
                with contextlib.suppress(TelegramAPIError):
                    await event.answer(refusal)
                return None
        return await handler(event, data)
