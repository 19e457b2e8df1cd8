"""Simulated users: messages, button presses and draft stops, queued as updates."""

from __future__ import annotations

import re
import time
from typing import Any

from .models import ChatInfo, ChatMessage
from .state import World
from .textutil import utf16_len

_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?![\w@])")
CHAT_TYPES = frozenset({"private", "group", "supergroup"})
# The service accounts Telegram puts in `from` of messages sent on behalf of a chat.
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                       "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel",
               "username": "Channel_Bot"}


def auto_entities(text: str) -> list[dict[str, Any]]:
    """bot_command and mention entities, as Telegram's clients/server add them."""
    found = [("bot_command", m) for m in _COMMAND.finditer(text)]
    found += [("mention", m) for m in _MENTION.finditer(text)]
    entities = [
        {
            "type": kind,
            "offset": utf16_len(text[: m.start()]),
            "length": utf16_len(m.group()),
        }
        for kind, m in found
    ]
    return sorted(entities, key=lambda e: e["offset"])


def user_dict(
    user_id: int, first_name: str, username: str | None, language_code: str | None
) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    if language_code:
        user["language_code"] = language_code
    return user


def resolve_user(chat_id: int, user_id: int | None, chat_type: str) -> int:
    """Check the chat/user ids a test passes are ones Telegram could produce."""
    if chat_type not in CHAT_TYPES:
        raise ValueError(f"chat_type must be one of {sorted(CHAT_TYPES)}, not {chat_type!r}")
    if chat_type == "private":
        if chat_id <= 0 or user_id not in (None, chat_id):
            raise ValueError("a private chat has chat_id == user_id > 0")
        return chat_id
    if chat_id >= 0:
        raise ValueError("group chat ids are negative")
    if user_id is None or user_id <= 0:
        raise ValueError("user_id (> 0) is required in group chats")
    return user_id


def _writing_in(world: World, chat_id: int, chat_type: str, chat_title: str | None,
                user: dict[str, Any], reply_to_message_id: int | None) -> tuple[Any, Any]:
    """The chat a user writes in (created if new; its type checked) and the message they
    reply to (which must exist there); the user is seen in it."""
    replied = world.find(chat_id, reply_to_message_id or 0)
    if reply_to_message_id is not None and replied is None:
        raise ValueError(f"message {reply_to_message_id} is not in chat {chat_id}")
    chat = world.chats.get(chat_id)
    if chat is not None and chat.type != chat_type:
        raise ValueError(f"chat {chat_id} is a {chat.type} chat, not {chat_type}")
    chat = ensure_chat(world, chat_id, chat_type, user, chat_title)
    world.saw_user(chat_id, user)
    return chat, replied


def user_sends(
    world: World,
    text: str | None,
    *,
    chat_id: int,
    user: dict[str, Any],
    chat_type: str,
    chat_title: str | None,
    reply_to_message_id: int | None,
    entities: list[dict[str, Any]] | None,
    sticker: bool,
    photo: bool,
    sender_chat: dict[str, Any] | None = None,
    author_signature: str | None = None,
    thread_id: int | None = None,
) -> dict[str, Any]:
    """Store a user's message and queue its ``message`` update.

    `thread_id`: the topic it is written in (a reply is in the replied message's topic).
    """
    if sticker and (photo or text is not None):
        raise ValueError("a sticker message has no text or photo")
    if text is None and not (sticker or photo):
        raise ValueError("pass text, sticker=True or photo=True")
    chat, replied = _writing_in(world, chat_id, chat_type, chat_title, user,
                                reply_to_message_id)
    if replied is not None:
        if thread_id is not None and replied.thread_id != thread_id:
            raise ValueError(f"message {reply_to_message_id} is not in topic {thread_id}")
        thread_id = replied.thread_id
    if thread_id is not None and thread_id not in chat.topics:
        raise ValueError(f"chat {chat_id} has no topic {thread_id}")
    if thread_id is not None and reply_to_message_id is None:
        # In a topic, a message that replies to nothing replies to the topic's first message.
        reply_to_message_id = thread_id
    message = ChatMessage(0, from_bot=False, sender=user, reply_to_message_id=reply_to_message_id,
                          sender_chat=sender_chat, author_signature=author_signature,
                          thread_id=thread_id)
    found = auto_entities(text or "") if entities is None else entities
    if sticker:
        message.media["sticker"] = _sticker(world.serial())
    elif photo:
        message.media["photo"] = _photo(world.serial())
        message.caption, message.caption_entities = text, found
    else:
        message.text, message.entities = text, found
    world.add_message(chat_id, message)
    return world.add_update("message", world.message_dict(chat_id, message))


def user_edits(world: World, chat_id: int, message_id: int, text: str,
               entities: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The author of a text message edits it: same message_id, new text, `edit_date` set;
    queues an ``edited_message`` update (a message sent on behalf of a chat is edited by it)."""
    message = world.find(chat_id, message_id)
    if message is None or message.from_bot:
        raise ValueError(f"no user message {message_id} in chat {chat_id}")
    if message.text is None:
        raise ValueError("only text messages are edited here (a caption is another matter)")
    found = auto_entities(text) if entities is None else entities
    if not text.strip():
        raise ValueError("Telegram clients do not save an empty edit")
    if text == message.text and found == message.entities:
        raise ValueError("an unchanged edit is not saved (MESSAGE_NOT_MODIFIED)")
    message.text, message.entities = text, found
    message.edits += 1
    message.edit_date = max(int(time.time()), message.date)
    return world.add_update("edited_message", world.message_dict(chat_id, message))



def user_sends_media(
    world: World,
    *,
    chat_id: int,
    user: dict[str, Any],
    chat_type: str,
    chat_title: str | None,
    media: dict[str, Any],
    caption: str | None,
    media_group_id: str | None = None,
    reply_to_message_id: int | None = None,
    caption_entities: list[dict[str, Any]] | None = None,
    thread_id: int | None = None,
) -> dict[str, Any]:
    """Store a user's photo, document, voice or video note (`media`: its Message field) and
    queue its update. Voice and video notes take no caption here; albums hold photos and
    documents only."""
    if set(media) - {"photo", "document", "voice", "video_note"} or len(media) != 1:
        raise ValueError("media is one of photo, document, voice or video_note")
    if media_group_id is not None and not set(media) & {"photo", "document"}:
        raise ValueError("only photos and documents are sent as albums")
    if caption is not None and "video_note" in media:
        raise ValueError("a video note has no caption")
    chat, replied = _writing_in(world, chat_id, chat_type, chat_title, user,
                                reply_to_message_id)
    if replied is not None:
        thread_id = replied.thread_id
    if thread_id is not None and thread_id not in chat.topics:
        raise ValueError(f"chat {chat_id} has no topic {thread_id}")
    message = ChatMessage(0, from_bot=False, sender=user,
                          reply_to_message_id=reply_to_message_id or thread_id,
                          thread_id=thread_id)
    message.media.update(media)
    if media_group_id is not None:
        message.media["media_group_id"] = media_group_id
    if caption is not None:
        message.caption = caption
        message.caption_entities = (auto_entities(caption) if caption_entities is None
                                    else caption_entities)
    world.add_message(chat_id, message)
    return world.add_update("message", world.message_dict(chat_id, message))


def ensure_chat(world: World, chat_id: int, chat_type: str, user: dict[str, Any],
                chat_title: str | None) -> ChatInfo:
    """The chat, created on its first message (later messages refresh its names only)."""
    chat = world.chats.get(chat_id)
    if chat is None:
        chat = world.chats[chat_id] = ChatInfo(chat_id, chat_type)
    if chat_type == "private":
        chat.first_name, chat.username = user["first_name"], user.get("username")
        chat.blocked = False  # writing to the bot unblocks it
    else:
        chat.title = chat_title or chat.title or "Test group"
    return chat


def create_topic(world: World, chat_id: int, name: str, user: dict[str, Any],
                 by_bot: bool) -> int:
    """A user (or the bot) opens a topic; returns its message_thread_id. A forum supergroup
    is created if `chat_id` is new; a private chat gets topics (the bot's topic mode is on)."""
    chat = world.chats.get(chat_id)
    if chat_id > 0:
        chat = ensure_chat(world, chat_id, "private", user, None)
        world.private_topics = True
    elif chat is None:
        chat = world.chats[chat_id] = ChatInfo(chat_id, "supergroup", title="Test forum",
                                               is_forum=True)
        # Message 1 opened the chat; thread 1 is the General topic (never a topic of its own).
        opened = ChatMessage(0, from_bot=False, sender=user)
        opened.media["supergroup_chat_created"] = True
        world.add_message(chat_id, opened)
    if chat.type != "private" and not chat.is_forum:
        raise ValueError(f"chat {chat_id} is not a forum")
    creator = world.bot_user if by_bot else user
    message = world.create_topic(chat_id, name, creator, by_bot)
    if not by_bot:  # the bot hears of it as a service message
        world.add_update("message", world.message_dict(chat_id, message))
    return message.message_id


def sender_chat(world: World, chat_id: int, channel_id: int | None,
                channel_title: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`from`, `sender_chat`) of a message sent on behalf of a chat in supergroup `chat_id`:
    the group itself (an anonymous admin) or a channel (its posts forwarded to its discussion
    group, or a member writing as their channel)."""
    if chat_id >= 0:
        raise ValueError("group chat ids are negative")
    chat = world.chats.setdefault(chat_id, ChatInfo(chat_id, "supergroup", title="Test group"))
    if chat.type != "supergroup":
        raise ValueError("only supergroups have anonymous admins and members writing as a channel")
    if channel_id is None:
        return GROUP_ANONYMOUS_BOT, chat.as_dict()
    if channel_id > -1_000_000_000_000 or channel_id == chat_id:
        raise ValueError("a channel id looks like -100xxxxxxxxxx and is not the group's")
    return CHANNEL_BOT, {"id": channel_id, "title": channel_title or "Test channel",
                         "type": "channel"}


def user_presses(
    world: World, chat_id: int, message_id: int, callback_data: str, user: dict[str, Any],
    *, forged: bool = False,
) -> str:
    """Press an inline button that is on the message now; returns the callback query id.

    `forged`: send `callback_data` whether or not such a button is shown (a modified client,
    or a button from an older keyboard).
    """
    message = world.find(chat_id, message_id)
    if message is None or not message.from_bot:
        raise ValueError(f"no bot message {message_id} in chat {chat_id}")
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    shown = any(b.get("callback_data") == callback_data for row in rows for b in row)
    if not shown and not forged:
        raise ValueError(f"message {message_id} has no button with callback_data={callback_data!r}")
    world.saw_user(chat_id, user)
    query_id = str(4_000_000_000_000_000_000 + world.serial())
    query = {
        "id": query_id,
        "from": user,
        "message": world.message_dict(chat_id, message),
        "chat_instance": str(abs(chat_id) * 7919 + 13),
        "data": callback_data,
    }
    world.callback_queries[query_id] = query
    world.add_update("callback_query", query)
    return query_id


def resend_callback(world: World, query_id: str) -> str:
    """The client sends the same callback query again (a retry after a timeout)."""
    query = world.callback_queries[query_id]
    world.add_update("callback_query", query)
    return query_id


def user_stops_generation(world: World, chat_id: int, draft_id: int) -> dict[str, Any]:
    """Press the stop button of a streamed draft (needs a draft sent with can_stop=True)."""
    frames = [f for f in world.drafts.get(chat_id, []) if f.draft_id == draft_id]
    if not frames:
        raise ValueError(f"no draft {draft_id} was shown in chat {chat_id}")
    if not frames[-1].can_stop:
        raise ValueError(f"draft {draft_id} has no stop button (can_stop was not set)")
    payload: dict[str, Any] = {"chat": world.chats[chat_id].as_dict(), "draft_id": draft_id}
    if frames[-1].thread_id is not None:
        payload["message_thread_id"] = frames[-1].thread_id
    return world.add_update("stopped_message_generation", payload)


def _sticker(n: int) -> dict[str, Any]:
    return {
        "file_id": f"CAACAgIAAxkBAAI{n:08d}",
        "file_unique_id": f"AgAD{n:08d}",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
    }


def _photo(n: int) -> list[dict[str, Any]]:
    return [
        {
            "file_id": f"AgACAgIAAxkBAAI{n:08d}{size}",
            "file_unique_id": f"AQAD{n:08d}{size}",
            "width": size,
            "height": size,
            "file_size": size * 40,
        }
        for size in (90, 320, 800)
    ]
