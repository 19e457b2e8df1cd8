"""Records of what the fake Telegram saw and shows: messages, drafts, requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChatMessage:
    """A message as the user currently sees it in a chat."""

    message_id: int
    from_bot: bool
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    document: dict[str, Any] | None = None  # file_id, file_name, size, mime_type, content
    edits: int = 0
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    date: int = 0
    edit_date: int | None = None
    sender: dict[str, Any] = field(default_factory=dict)  # the "from" User object
    # The forum (or private-chat) topic it is in: the topic's message_thread_id; None for the
    # chat itself (no topics, or a forum's General topic).
    thread_id: int | None = None
    # Sent on behalf of a chat (anonymous group admins, channels): that Chat object.
    sender_chat: dict[str, Any] | None = None
    author_signature: str | None = None
    reply_to_message_id: int | None = None
    media: dict[str, Any] = field(default_factory=dict)  # e.g. {"sticker": {...}}
    # sendPhoto: file_id, file_unique_id, file_name, mime_type, size, content, width, height
    photo: dict[str, Any] | None = None
    # sendRichMessage: the InputRichMessage as sent ({"markdown": …} / {"html": …} / blocks)
    rich: dict[str, Any] | None = None


@dataclass(frozen=True)
class DraftFrame:
    """One sendMessageDraft call as the user saw it (``time`` is monotonic)."""

    draft_id: int
    text: str
    entities: list[dict[str, Any]]
    time: float
    can_stop: bool = False
    keep_on_stop: bool = False
    thread_id: int | None = None  # a private-chat topic
    # sendRichMessageDraft: the InputRichMessage as sent (`text` is its markdown or html)
    rich: dict[str, Any] | None = None


@dataclass
class RecordedRequest:
    """One Bot API call (``params`` decoded; uploaded files as name/size/mime dicts).

    ``ok`` turns True when a successful answer is sent; a waiting long poll has ``ok`` False
    and ``error`` None.
    """

    method: str
    params: dict[str, Any]
    ok: bool = False
    error: str | None = None
    error_code: int | None = None
    result: Any = None
    time: float = 0.0


@dataclass
class ChatInfo:
    """A chat the bot knows because a user wrote in it."""

    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    username: str | None = None
    blocked: bool = False
    is_forum: bool = False  # a supergroup with topics
    # Topics: message_thread_id (the id of the topic's creation message) → name. Forums, and
    # private chats with a bot that has topics enabled.
    topics: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.first_name or ""
            if self.username:
                chat["username"] = self.username
        else:
            chat["title"] = self.title or ""
        if self.is_forum:
            chat["is_forum"] = True
        return chat
