"""The fake's world: chats, messages, pending updates, drafts, callback queries, files."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .models import ChatInfo, ChatMessage, DraftFrame

# Update types Telegram leaves out unless they are asked for explicitly.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_type(update: dict[str, Any]) -> str:
    """The payload field of an Update ("message", "callback_query", ...)."""
    return next(k for k in update if k != "update_id")


def photo_sizes(photo: dict[str, Any]) -> list[dict[str, Any]]:
    """The PhotoSize list Telegram returns: scaled copies (longest side 90, 320, 800, 1280,
    2560 px) up to the first that holds the whole image, smallest first."""
    width, height = photo["width"], photo["height"]
    sizes = []
    for n, limit in enumerate((90, 320, 800, 1280, 2560)):
        scale = min(1.0, limit / max(width, height))
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        sizes.append({
            "file_id": f"{photo['file_id']}{n}",
            "file_unique_id": f"{photo['file_unique_id']}{n}",
            "width": w,
            "height": h,
            "file_size": max(1, round(photo["size"] * w * h / (width * height))),
        })
        if scale == 1.0:
            break
    return sizes


class World:
    """Everything the fake server knows; mutated by API calls and simulated users."""

    def __init__(self, bot_user: dict[str, Any]) -> None:
        self.bot_user = bot_user
        self.chats: dict[int, ChatInfo] = {}
        self.messages: dict[int, dict[int, ChatMessage]] = {}
        self.updates: list[dict[str, Any]] = []
        self.drafts: dict[int, list[DraftFrame]] = {}
        self.chat_actions: dict[int, list[str]] = {}
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, str] = {}
        self.private_topics = False  # the bot has topics in private chats (getMe)
        # Group members the fake knows (getChatMember): chat id → user id → ChatMember.
        self.members: dict[int, dict[int, dict[str, Any]]] = {}
        self.users: dict[int, dict[str, Any]] = {}  # every user seen, by id
        self.event = asyncio.Event()
        self._next_message_id: dict[int, int] = {}
        self._next_update_id = 1
        self._serial = 0

    # --- ids and notifications -------------------------------------------------
    def serial(self) -> int:
        """A fresh positive number for ids (files, callback queries)."""
        self._serial += 1
        return self._serial

    def notify(self) -> None:
        """Wake long polls waiting on :attr:`event`."""
        event, self.event = self.event, asyncio.Event()
        event.set()

    # --- updates -----------------------------------------------------------------
    def add_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self.updates.append(update)
        self.notify()
        return update

    def confirm(self, offset: int) -> None:
        """getUpdates ``offset``: forget updates below it (negative: keep the last -offset)."""
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]

    # --- members -----------------------------------------------------------------
    def saw_user(self, chat_id: int, user: dict[str, Any]) -> None:
        """A person wrote or pressed a button in a chat: in a group they are a member (unless
        the test made them more)."""
        if user.get("is_bot"):
            return
        self.users[user["id"]] = user
        if chat_id < 0:
            members = self.members.setdefault(chat_id, {})
            if user["id"] not in members:
                members[user["id"]] = {"status": "member", "user": user}
            else:
                members[user["id"]]["user"] = user

    # --- messages ----------------------------------------------------------------
    def add_message(self, chat_id: int, message: ChatMessage) -> ChatMessage:
        """Store ``message`` under the next message_id of the chat (shared by bot and users)."""
        message.message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message.message_id + 1
        message.date = message.date or int(time.time())
        self.messages.setdefault(chat_id, {})[message.message_id] = message
        return message

    def find(self, chat_id: int, message_id: int) -> ChatMessage | None:
        return self.messages.get(chat_id, {}).get(message_id)

    def thread_root(self, chat_id: int, message: ChatMessage) -> int:
        """The first message of the reply chain `message` belongs to."""
        seen = {message.message_id}
        while (up := self.find(chat_id, message.reply_to_message_id or 0)) is not None:
            if up.message_id in seen:
                break
            seen.add(up.message_id)
            message = up
        return message.message_id

    def create_topic(self, chat_id: int, name: str, creator: dict[str, Any],
                     by_bot: bool) -> ChatMessage:
        """A topic in a forum or a private chat: its `forum_topic_created` service message,
        whose id is the topic's message_thread_id."""
        chat = self.chats[chat_id]
        message = ChatMessage(0, from_bot=by_bot, sender=creator)
        message.media["forum_topic_created"] = {"name": name, "icon_color": 7322096}
        self.add_message(chat_id, message)
        message.thread_id = message.message_id
        chat.topics[message.message_id] = name
        return message

    def topic_of(self, chat_id: int, message_id: int | None) -> int | None:
        """The topic a message is in (None: the chat itself or a forum's General topic)."""
        found = self.find(chat_id, message_id or 0)
        return found.thread_id if found is not None else None

    def message_dict(
        self, chat_id: int, message: ChatMessage, *, with_reply: bool = True
    ) -> dict[str, Any]:
        """The Bot API Message object for a stored message."""
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "from": message.sender,
            "chat": self.chats[chat_id].as_dict(),
            "date": message.date,
        }
        if message.sender_chat is not None:
            result["sender_chat"] = message.sender_chat
        if message.author_signature:
            result["author_signature"] = message.author_signature
        if message.edit_date:
            result["edit_date"] = message.edit_date
        replied = self.find(chat_id, message.reply_to_message_id or 0)
        if message.thread_id is not None:
            result["message_thread_id"] = message.thread_id
            result["is_topic_message"] = True
        elif replied is not None and self.chats[chat_id].type == "supergroup":
            # A reply outside topics: the id of its reply thread, which is not a topic.
            result["message_thread_id"] = self.thread_root(chat_id, replied)
        if with_reply and replied is not None:
            result["reply_to_message"] = self.message_dict(chat_id, replied, with_reply=False)
        if message.rich is not None:  # one paragraph holding the source: enough for a client
            source = next(str(message.rich[k]) for k in ("markdown", "html", "blocks")
                          if message.rich.get(k) is not None)
            result["rich_message"] = {"blocks": [{"type": "paragraph", "text": source}]}
        if message.text is not None:
            result["text"] = message.text
            if message.entities:
                result["entities"] = message.entities
        if message.document is not None:
            doc = message.document
            result["document"] = {
                "file_id": doc["file_id"],
                "file_unique_id": doc["file_unique_id"],
                "file_name": doc["file_name"],
                "mime_type": doc["mime_type"],
                "file_size": doc["size"],
            }
        if message.photo is not None:
            result["photo"] = photo_sizes(message.photo)
        result.update(message.media)
        if message.caption is not None:
            result["caption"] = message.caption
            if message.caption_entities:
                result["caption_entities"] = message.caption_entities
        if message.reply_markup:
            result["reply_markup"] = message.reply_markup
        return result
