"""Who a message is for: the bot (mentioned, replied to, or in a private chat) or not."""

from __future__ import annotations

import re

from aiogram import Bot
from aiogram.enums import ChatType, ContentType
from aiogram.filters import Filter
from aiogram.types import Message, MessageEntity

# What a person can send instead of text. Service messages (a topic opened, a pinned
# message…) are not in it: they are events, not something to answer.
NOT_TEXT = frozenset({
    ContentType.STICKER, ContentType.PHOTO, ContentType.VIDEO, ContentType.ANIMATION,
    ContentType.AUDIO, ContentType.VOICE, ContentType.VIDEO_NOTE, ContentType.DOCUMENT,
    ContentType.CONTACT, ContentType.LOCATION, ContentType.VENUE, ContentType.POLL,
    ContentType.DICE, ContentType.STORY, ContentType.PAID_MEDIA,
})


# A command as Telegram clients write it: /name or /name@bot_username, then a space or the end.
_COMMAND = re.compile(r"/[A-Za-z0-9_]*(?:@([A-Za-z0-9_]*))?(?=\s|$)")


def is_command(message: Message) -> bool:
    """Text starting with "/": a command, for us or not, never a question for a model."""
    return (message.text or "").startswith("/")


def command_mention(text: str) -> str | None:
    """The bot a command names (`/cmd@name` → "name"), None for a bare `/cmd`."""
    match = _COMMAND.match(text)
    return match.group(1) or None if match else None


def topic_of(message: Message) -> int | None:
    """The forum (or private-chat) topic a message is in; None for the chat itself and a
    forum's General topic. A reply outside topics carries the id of its reply thread in
    `message_thread_id` too, which is not a topic (sending to it fails)."""
    return message.message_thread_id if message.is_topic_message else None


def replies_to_bot(message: Message, bot_id: int) -> bool:
    """A real reply to one of the bot's messages. In a topic every message that replies to
    nothing "replies" to the topic's first message, the service message that opened it —
    which is the bot's if the bot opened the topic."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return False
    return replied.forum_topic_created is None and replied.message_id != topic_of(message)


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


async def addressed_prompt(message: Message, bot: Bot) -> str | None:
    """The text meant for the bot (its mention removed), or None if the bot is not addressed.

    Private chats: always. Groups: a mention of the bot or a reply to one of its messages.
    A photo's caption is its text.
    """
    captioned = message.text is None
    text = (message.caption if captioned else message.text) or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    me = await bot.me()
    if replies_to_bot(message, me.id):
        return text
    mention = f"@{me.username}".lower() if me.username else None
    for entity in (message.caption_entities if captioned else message.entities) or []:
        if entity.type == "mention" and mention:
            value = entity_text(text, entity)
            if value is not None and value.lower() == mention:
                return text.replace(value, "", 1)
    return None


class AddressedToBot(Filter):
    """A question for the bot (see `addressed_prompt`); passes its text as `prompt`.

    Commands are never questions, whoever they are for.
    """

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, str]:
        if is_command(message):
            return False
        prompt = await addressed_prompt(message, bot)
        return False if prompt is None else {"prompt": prompt}


class CommandForUs(Filter):
    """A command this bot should answer: `/cmd@<this bot>`, or a bare `/cmd` in a private chat
    or, in a group, when the message also addresses the bot. Commands for other bots
    (`/cmd@otherbot`) are not ours, wherever they are sent."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        if not is_command(message):
            return False
        named = command_mention(message.text or "")
        if named is not None:
            me = await bot.me()
            return me.username is not None and named.lower() == me.username.lower()
        return await addressed_prompt(message, bot) is not None
