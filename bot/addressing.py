"""Who a message is for: the bot (mentioned, replied to, or in a private chat) or not."""

from __future__ import annotations

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import Message, MessageEntity


def entity_text(text: str, entity: MessageEntity) -> str | None:
    """The text `entity` covers, or None when its UTF-16 offsets do not fall on whole
    characters inside `text` (entities come from clients and may be malformed)."""
    units = text.encode("utf-16-le")
    start, end = entity.offset * 2, (entity.offset + entity.length) * 2
    if entity.offset < 0 or entity.length <= 0 or end > len(units):
        return None
    try:
        return units[start:end].decode("utf-16-le")  # strict: half a surrogate pair fails
    except UnicodeDecodeError:
        return None


class AddressedToBot(Filter):
    """Private chats: always. Groups: a mention of the bot or a reply to one of its messages.

    Passes the text with the mention removed as `prompt`.
    """

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, str]:
        text = message.text or ""
        if message.chat.type == ChatType.PRIVATE:
            return {"prompt": text}
        me = await bot.me()
        replied = message.reply_to_message
        if replied is not None and replied.from_user and replied.from_user.id == me.id:
            return {"prompt": text}
        mention = f"@{me.username}".lower() if me.username else None
        for entity in message.entities or []:
            if entity.type == "mention" and mention:
                value = entity_text(text, entity)
                if value is not None and value.lower() == mention:
                    return {"prompt": text.replace(value, "", 1)}
        return False
