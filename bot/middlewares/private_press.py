"""Refuses a button press in a private chat by anyone but that chat's person.

Telegram shows a private chat's buttons to that person only, so such a press comes from a
modified client (forged `from`). It is answered with one line before any handler (or the
user middleware) runs: nothing is stored, no one's preferences change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, TelegramObject

from bot.texts import lang_of, t


class PrivatePressGuard(BaseMiddleware):
    """An outer middleware on callback queries."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, CallbackQuery) and event.message is not None:
            chat = event.message.chat
            if chat.type == ChatType.PRIVATE and event.from_user.id != chat.id:
                lang = lang_of(event.from_user.language_code)
                await event.answer(t("not_yours", lang), show_alert=True)
                return None
        return await handler(event, data)
