"""Loads (and refreshes) the sender and the chat from the database for each update the bot
handles (an inner middleware: it runs after a handler's filters matched, so group members who
never talk to the bot are not stored). A handler flagged `STORES_AUTHOR` does that itself, in
the transaction that stores the question (one transaction fewer on the hot path)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser

from bot.texts import chosen_lang, lang_of
from storage.repositories.users import TelegramUser, UserRepository

log = logging.getLogger(__name__)

# Handler flag: the handler gets `author` (a TelegramUser) instead of `db_user`/`chat_row_id`
# and stores the sender and the chat itself.
STORES_AUTHOR = "stores_author"


class UserMiddleware(BaseMiddleware):
    """Puts `db_user`, `chat_row_id`, `chat_prefs` (the chat's prompt, persona and model) and
    `lang` into handler data (`author` and `lang` for a handler flagged `STORES_AUTHOR`)."""

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
        sender_chat: Chat | None = getattr(event, "sender_chat", None)
        if chat is None:
            return await handler(event, data)
        if sender_chat is not None:
            # On behalf of a chat (an anonymous admin: the group itself; a channel): the chat
            # is the author. `from` is a service account (GroupAnonymousBot, Channel_Bot);
            # nothing personal is stored, and replies are in the default language.
            author = TelegramUser(sender_chat.id)
        elif tg_user is not None and not tg_user.is_bot:
            author = TelegramUser(tg_user.id, tg_user.username, tg_user.first_name,
                                  tg_user.language_code)
        else:
            log.debug("update %s has no author to answer; skipped", type(event).__name__)
            return None
        data["lang"] = lang_of(author.language_code)
        if get_flag(data, STORES_AUTHOR):
            data["author"] = author
        else:
            db_user, chat_row_id, chat_prefs = await self.users.touch_with_prefs(
                author, chat.id, chat.type, chat.title)
            data["db_user"] = db_user
            data["chat_row_id"] = chat_row_id
            data["chat_prefs"] = chat_prefs
            data["lang"] = chosen_lang(db_user.lang, data["lang"])
        return await handler(event, data)
