"""Loads (and refreshes) the sender and the chat from the database for each update the bot
handles (an inner middleware: it runs after a handler's filters matched, so group members who
never talk to the bot are not stored)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser

from bot.texts import lang_of
from storage.repositories.users import TelegramUser, UserRepository


class UserMiddleware(BaseMiddleware):
    """Puts `db_user`, `chat_row_id` and `lang` into handler data."""

    def __init__(self, users: UserRepository) -> None:
        self.users = users

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if tg_user is None or chat is None or tg_user.is_bot:
            return await handler(event, data)
        db_user, chat_row_id = await self.users.touch(
            TelegramUser(tg_user.id, tg_user.username, tg_user.first_name, tg_user.language_code),
            chat.id, chat.type, chat.title,
        )
        data["db_user"] = db_user
        data["chat_row_id"] = chat_row_id
        data["lang"] = lang_of(tg_user.language_code)
        return await handler(event, data)
