"""Refuses button presses that cannot be the bot's own buttons, before any handler (or the
user middleware) runs: nothing is stored, no one's preferences change. Each gets one toast.

- No `message`: a button under an inline-mode message, which this bot never sends.
- In a private chat, a press by anyone but that chat's person: Telegram shows a private
  chat's buttons to that person only, so it comes from a modified client (a forged `from`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, TelegramObject

from bot.texts import lang_of, t


class PressGuard(BaseMiddleware):
    """An outer middleware on callback queries."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, CallbackQuery):
            refusal = None
            if event.message is None:
                refusal = "stale_button"
            elif (event.message.chat.type == ChatType.PRIVATE
                  and event.from_user.id != event.message.chat.id):
                refusal = "not_yours"
            if refusal is not None:
                with contextlib.suppress(TelegramAPIError):  # e.g. a query too old to answer
                    await event.answer(t(refusal, lang_of(event.from_user.language_code)),
                                       show_alert=True)
                return None
        return await handler(event, data)
