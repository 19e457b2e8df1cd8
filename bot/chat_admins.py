"""Who may change a chat's settings (its system prompt, persona and model): in a private chat
its user; in a group its admins — the owner, administrators, and anonymous admins (who write as
the group itself, `sender_chat`). Anyone may look."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR})


async def is_chat_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether Telegram says `user_id` administers `chat_id` (False when it cannot say)."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as exc:
        log.warning("could not check admin rights of %s in chat %s: %s", user_id, chat_id,
                    exc.message)
        return False
    return member.status in ADMIN_STATUSES


async def may_configure(bot: Bot, event: Message | CallbackQuery) -> bool:
    """Whether the sender of a command (or the presser of a button) may change the chat's
    settings."""
    message = event if isinstance(event, Message) else event.message
    if message is None:
        return False
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        return event.from_user is not None and event.from_user.id == chat.id
    if isinstance(event, Message) and event.sender_chat is not None:
        # On behalf of a chat: the group itself is an anonymous admin; a channel is not.
        return event.sender_chat.id == chat.id
    if event.from_user is None:
        return False
    return await is_chat_admin(bot, chat.id, event.from_user.id)
