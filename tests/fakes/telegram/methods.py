"""Bot API methods of the fake (all but getUpdates, which lives with the HTTP server)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from typing import Any

from .errors import NOT_MODIFIED, ApiError, bad_request
from .flood import FloodControl, Kind
from .formatting import MAX_CAPTION, canonical, prepare_text
from .markup import scope_key, validate_commands, validate_reply_markup
from .models import ChatInfo, ChatMessage, DraftFrame
from .params import Params, Upload
from .state import World, photo_sizes
from .textutil import utf16_len

CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip
MAX_PHOTO = 10 * 1024 * 1024
# ReactionTypeEmoji: the emoji a reaction may be (Bot API 9.x).
REACTION_EMOJI = frozenset({
    "❤", "👍", "👎", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉",
    "🤩", "🤮", "💩", "🙏", "👌", "🕊", "🤡", "🥱", "🥴", "😍", "🐳",
    "❤\u200d🔥", "🌚", "🌭", "💯", "🤣", "⚡", "🍌", "🏆", "💔", "🤨", "😐",
    "🍓", "🍾", "💋", "🖕", "😈", "😴", "😭", "🤓", "👻", "👨\u200d💻", "👀",
    "🎃", "🙈", "😇", "😨", "🤝", "✍", "🤗", "🫡", "🎅", "🎄", "☃", "💅", "🤪",
    "🗿", "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎", "👾", "🤷\u200d♂",
    "🤷", "🤷\u200d♀", "😡",
})
# Rich messages (Bot API 10.1, "Rich Message Limits"): up to 32768 characters of text. The fake
# counts the source Markdown/HTML, which is at least as long as the text it renders.
MAX_RICH = 32768
RICH_FIELDS = ("html", "markdown", "blocks")
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
Handler = Callable[[Params], Any]


class BotMethods:
    """Synchronous handlers: each takes :class:`Params`, returns a result or raises ApiError."""

    def __init__(
        self,
        world: World,
        *,
        group_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        private_flood: bool = False,
        global_per_second: float | None = None,
    ) -> None:
        self.world, self.group_limit, self.clock = world, group_limit, clock
        self.flood = FloodControl(clock, group_per_minute=group_limit, private=private_flood,
                                  global_per_second=global_per_second)

    def table(self) -> dict[str, Handler]:
        """camelCase method name -> handler."""
        return {
            "getMe": self.get_me,
            "sendMessage": self.send_message,
            "sendMessageDraft": self.send_message_draft,
            "sendRichMessage": self.send_rich_message,
            "sendRichMessageDraft": self.send_rich_message_draft,
            "editMessageText": self.edit_message_text,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "deleteMessages": self.delete_messages,
            "answerCallbackQuery": self.answer_callback_query,
            "setMessageReaction": self.set_message_reaction,
            "sendChatAction": self.send_chat_action,
            "getChatMember": self.get_chat_member,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "sendDocument": self.send_document,
            "sendPhoto": self.send_photo,
            "setMyDescription": self.set_my_description,
            "setMyShortDescription": self.set_my_short_description,
        }

    # --- helpers -----------------------------------------------------------------
    def _chat(self, p: Params) -> ChatInfo:
        chat_id = p.int("chat_id", missing="chat_id is empty")
        chat = self.world.chats.get(chat_id or 0)
        if chat is None:
            raise bad_request("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _check_flood(self, chat_id: int, kind: Kind = "message") -> None:
        """Flood control (see `flood.FloodControl`): 429 if this call is over a budget."""
        self.flood.check(chat_id, kind)

    def _count_flood(self, chat_id: int, kind: Kind = "message") -> None:
        self.flood.count(chat_id, kind)

    def _reply_to(self, chat: ChatInfo, p: Params) -> int | None:
        params = p.json("reply_parameters")
        if isinstance(params, dict):
            message_id, allow = params.get("message_id"), params.get("allow_sending_without_reply")
            if params.get("chat_id") not in (None, chat.id):
                raise bad_request("message to be replied not found")
        else:
            message_id = p.int("reply_to_message_id")
            allow = p.flag("allow_sending_without_reply")
        if message_id is None or self.world.find(chat.id, message_id) is not None:
            return message_id
        if allow:
            return None
        raise bad_request("message to be replied not found")

    def _thread(self, chat: ChatInfo, p: Params, reply_to: int | None) -> int | None:
        """The topic a sent message lands in: `message_thread_id` if it names a topic of the
        chat, else the replied message's topic, else none (the chat itself, or General)."""
        thread = p.int("message_thread_id")
        if thread is None:
            return self.world.topic_of(chat.id, reply_to)
        # Forum topics (and private-chat topics) are the only threads one can send to: not
        # General (id 1, which takes no message_thread_id), not a reply thread's id.
        if thread not in chat.topics:
            raise bad_request("message thread not found")
        return thread

    def _place(self, message: ChatMessage, chat: ChatInfo, p: Params,
               reply_to: int | None) -> None:
        """Set where a sent message goes: its topic, and what it replies to (in a topic,
        a message that replies to nothing replies to the topic's first message)."""
        message.thread_id = self._thread(chat, p, reply_to)
        message.reply_to_message_id = reply_to or message.thread_id

    def _text(self, p: Params) -> tuple[str, list[dict[str, Any]]]:
        text, entities = prepare_text(p.get("text"), p.get("parse_mode"), p.json("entities"))
        if not text:
            raise bad_request("message text is empty")
        return text, entities

    def _bot_message(self, chat: ChatInfo, p: Params, action: str) -> ChatMessage:
        if p.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        message_id = p.int("message_id", missing="message identifier is not specified")
        message = self.world.find(chat.id, message_id or 0)
        if message is None:
            raise bad_request(f"message to {action} not found")
        if not message.from_bot:
            raise bad_request(f"message can't be {action}ed")
        return message

    def _show(self, chat: ChatInfo, message: ChatMessage) -> dict[str, Any]:
        return self.world.message_dict(chat.id, message)

    # --- bot ---------------------------------------------------------------------
    def get_me(self, p: Params) -> dict[str, Any]:
        me = {
            **self.world.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        if self.world.private_topics:
            me["has_topics_enabled"] = True
        return me

    # --- messages ----------------------------------------------------------------
    def send_message(self, p: Params) -> dict[str, Any]:
        chat = self._chat(p)
        self._check_flood(chat.id)
        text, entities = self._text(p)
        markup = validate_reply_markup(p.json("reply_markup"))
        reply_to = self._reply_to(chat, p)
        message = ChatMessage(0, True, text, entities, markup, sender=self.world.bot_user)
        self._place(message, chat, p, reply_to)
        self.world.add_message(chat.id, message)
        self._count_flood(chat.id)
        return self._show(chat, message)

    def _draft_target(self, p: Params) -> tuple[int, int, int | None]:
        """A draft's chat id, draft id and topic, checked (private chats only, non-zero id,
        within the draft flood limit)."""
        chat_id = p.int("chat_id", missing="chat_id is empty") or 0
        chat = self.world.chats.get(chat_id)
        if chat is None or chat.type != "private" or chat_id <= 0:
            raise bad_request("TEXTDRAFT_PEER_INVALID")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        draft_id = p.int("draft_id")
        if not draft_id:
            raise bad_request("TEXTDRAFT_ID_INVALID")
        self._check_flood(chat_id, "draft")
        return chat_id, draft_id, self._thread(chat, p, None)

    def send_message_draft(self, p: Params) -> bool:
        chat_id, draft_id, thread = self._draft_target(p)
        text, entities = prepare_text(p.get("text"), p.get("parse_mode"), p.json("entities"))
        frame = DraftFrame(
            draft_id, text, entities, self.clock(), p.flag("can_stop"), p.flag("keep_on_stop"),
            thread,
        )
        self.world.drafts.setdefault(chat_id, []).append(frame)
        self._count_flood(chat_id, "draft")
        return True

    @staticmethod
    def _rich(p: Params) -> tuple[dict[str, Any], str]:
        """The `rich_message` InputRichMessage, checked: exactly one of html, markdown and
        blocks, of the right type, not empty, within MAX_RICH. Returns it and its source."""
        rich = p.json("rich_message")
        if rich is None:
            raise bad_request("rich_message is empty")
        if not isinstance(rich, dict):
            raise bad_request("can't parse rich message: object expected")
        given = [name for name in RICH_FIELDS if rich.get(name) is not None]
        if len(given) != 1:
            raise bad_request("exactly one of html, markdown and blocks must be specified")
        source = rich[given[0]]
        if given[0] == "blocks":
            if not isinstance(source, list) or not source:
                raise bad_request("rich message blocks must be a non-empty array")
            source = str(source)
        elif not isinstance(source, str):
            raise bad_request(f"can't parse rich message: {given[0]} must be a string")
        if not source.strip():
            raise bad_request("message text is empty")
        if len(source) > MAX_RICH:
            raise bad_request("message is too long")
        for flag in ("is_rtl", "skip_entity_detection"):
            if rich.get(flag) is not None and not isinstance(rich[flag], bool):
                raise bad_request(f"can't parse rich message: {flag} must be a boolean")
        return rich, source

    def send_rich_message(self, p: Params) -> dict[str, Any]:
        """sendRichMessage: like sendMessage; the message shows `rich` (no text/entities)."""
        chat = self._chat(p)
        self._check_flood(chat.id)
        rich, _ = self._rich(p)
        markup = validate_reply_markup(p.json("reply_markup"))
        reply_to = self._reply_to(chat, p)
        message = ChatMessage(0, True, None, [], markup, sender=self.world.bot_user, rich=rich)
        self._place(message, chat, p, reply_to)
        self.world.add_message(chat.id, message)
        self._count_flood(chat.id)
        return self._show(chat, message)

    def send_rich_message_draft(self, p: Params) -> bool:
        """sendRichMessageDraft: private chats only, a non-zero draft_id, like the text one."""
        chat_id, draft_id, thread = self._draft_target(p)
        rich, source = self._rich(p)
        frame = DraftFrame(draft_id, source, [], self.clock(), p.flag("can_stop"),
                           p.flag("keep_on_stop"), thread, rich=rich)
        self.world.drafts.setdefault(chat_id, []).append(frame)
        self._count_flood(chat_id, "draft")
        return True

    def edit_message_text(self, p: Params) -> dict[str, Any]:
        chat = self._chat(p)
        message = self._bot_message(chat, p, "edit")
        self._check_flood(chat.id)
        text, entities = self._text(p)
        markup = validate_reply_markup(p.json("reply_markup"), inline_only=True)
        if message.text is None:  # a rich message too: it is edited with rich_message
            raise bad_request("there is no text in the message to edit")
        same = message.text == text and canonical(message.entities) == canonical(entities)
        if same and message.reply_markup == markup:
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.reply_markup = text, entities, markup
        self._edited(message)
        self._count_flood(chat.id)
        return self._show(chat, message)

    def edit_message_reply_markup(self, p: Params) -> dict[str, Any]:
        chat = self._chat(p)
        message = self._bot_message(chat, p, "edit")
        markup = validate_reply_markup(p.json("reply_markup"), inline_only=True)
        if message.reply_markup == markup:
            raise ApiError(400, NOT_MODIFIED)
        message.reply_markup = markup
        self._edited(message)
        return self._show(chat, message)

    def _edited(self, message: ChatMessage) -> None:
        message.edits += 1
        message.edit_date = int(time.time())

    def delete_message(self, p: Params) -> bool:
        chat = self._chat(p)
        message_id = p.int("message_id", missing="message identifier is not specified")
        if self.world.messages.get(chat.id, {}).pop(message_id or 0, None) is None:
            raise bad_request("message to delete not found")
        return True

    def delete_messages(self, p: Params) -> bool:
        chat = self._chat(p)
        ids = p.json("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad_request("message_ids must contain 1-100 message identifiers")
        for message_id in ids:
            self.world.messages.get(chat.id, {}).pop(message_id, None)
        return True

    def send_document(self, p: Params) -> dict[str, Any]:
        return self._send_file(p, "document", self._document)

    def send_photo(self, p: Params) -> dict[str, Any]:
        return self._send_file(p, "photo", self._photo)

    def _send_file(self, p: Params, kind: str,
                   read: Callable[[Params], dict[str, Any]]) -> dict[str, Any]:
        """sendDocument / sendPhoto: the file, an optional caption, markup and reply."""
        chat = self._chat(p)
        self._check_flood(chat.id)
        file = read(p)
        caption, entities = prepare_text(
            p.get("caption"),
            p.get("parse_mode"),
            p.json("caption_entities"),
            limit=MAX_CAPTION,
            too_long="message caption is too long",
        )
        markup = validate_reply_markup(p.json("reply_markup"))
        reply_to = self._reply_to(chat, p)
        message = ChatMessage(0, True, reply_markup=markup, sender=self.world.bot_user)
        setattr(message, kind, file)
        self._place(message, chat, p, reply_to)
        message.caption, message.caption_entities = caption or None, entities
        self.world.add_message(chat.id, message)
        self._count_flood(chat.id)
        return self._show(chat, message)

    def _upload(self, p: Params, field: str) -> Upload | str:
        """The uploaded file for `field`, or the file_id of one sent before."""
        ref = p.get(field)
        upload: Upload | None = p.uploads.get(field)
        if isinstance(ref, str) and ref.startswith("attach://"):
            upload = p.uploads.get(ref.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"file {ref} not found in the request")
        elif upload is None and isinstance(ref, str):
            if ref in self.world.files:
                return ref
            if ref.startswith(("http://", "https://")):
                raise bad_request("failed to get HTTP URL content")
            raise bad_request("wrong file identifier/HTTP URL specified")
        if upload is None:
            raise bad_request(f"there is no {field} in the request")
        if not upload.content:
            raise bad_request("file must be non-empty")
        return upload

    def _document(self, p: Params) -> dict[str, Any]:
        upload = self._upload(p, "document")
        if isinstance(upload, str):
            return self.world.files[upload]
        n = self.world.serial()
        name = upload.filename or "document"
        mime = mimetypes.guess_type(name)[0] or upload.content_type or "application/octet-stream"
        document = {
            "file_id": f"BQACAgIAAxkBAAI{n:08d}",
            "file_unique_id": f"AgAD{n:08d}",
            "file_name": name,
            "mime_type": mime,
            "size": len(upload.content),
            "content": upload.content,
        }
        self.world.files[document["file_id"]] = document
        return document

    def _photo(self, p: Params) -> dict[str, Any]:
        """The uploaded (or earlier sent) photo, checked against Telegram's photo limits."""
        upload = self._upload(p, "photo")
        if isinstance(upload, str):
            if "width" not in self.world.files[upload]:
                raise bad_request("type of file mismatch")
            return self.world.files[upload]
        if len(upload.content) > MAX_PHOTO:
            raise bad_request("PHOTO_SAVE_FILE_INVALID")
        dimensions = image_size(upload.content)
        if dimensions is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = dimensions
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        n = self.world.serial()
        photo = {
            "file_id": f"AgACAgIAAxkBAAI{n:08d}",
            "file_unique_id": f"AQAD{n:08d}",
            "file_name": upload.filename or "photo",
            "mime_type": upload.content_type,
            "size": len(upload.content),
            "content": upload.content,
            "width": width,
            "height": height,
        }
        for size in photo_sizes(photo):  # any size's file_id sends the photo again
            self.world.files[size["file_id"]] = photo
        return photo

    # --- interaction ---------------------------------------------------------------
    def answer_callback_query(self, p: Params) -> bool:
        query_id = str(p.get("callback_query_id") or "")
        queries = self.world.callback_queries
        if query_id not in queries or query_id in self.world.callback_answers:
            raise bad_request(QUERY_INVALID)
        if utf16_len(str(p.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.world.callback_answers[query_id] = dict(p.data)
        return True

    def set_message_reaction(self, p: Params) -> bool:
        """The bot's reaction on a message: replaces its previous one; an empty (or absent)
        list removes it. Bots without Premium set at most one emoji, from the allowed list."""
        chat = self._chat(p)
        message_id = p.int("message_id", missing="message identifier is not specified")
        message = self.world.find(chat.id, message_id or 0)
        if message is None:
            raise bad_request("message to react not found")
        if message.media and "forum_topic_created" in message.media:
            raise bad_request("message to react not found")
        reaction = p.json("reaction")
        if reaction is None:
            reaction = []
        if not isinstance(reaction, list):
            raise bad_request("can't parse reaction types JSON object")
        for item in reaction:
            if not isinstance(item, dict) or item.get("type") not in ("emoji", "custom_emoji",
                                                                       "paid"):
                raise bad_request("can't parse reaction types JSON object")
            if item["type"] != "emoji" or item.get("emoji") not in REACTION_EMOJI:
                raise bad_request("REACTION_INVALID")
        if len(reaction) > 1:
            raise bad_request("REACTIONS_TOO_MANY")
        if chat.reactions is not None and any(r["emoji"] not in chat.reactions
                                              for r in reaction):
            raise bad_request("REACTION_INVALID")
        message.bot_reactions = [r["emoji"] for r in reaction]
        return True

    def send_chat_action(self, p: Params) -> bool:
        chat = self._chat(p)
        self._thread(chat, p, None)
        action = p.get("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.world.chat_actions.setdefault(chat.id, []).append(action)
        return True

    def get_chat_member(self, p: Params) -> dict[str, Any]:
        """A ChatMember: in a group, whom the test made creator or administrator
        (`FakeTelegram.set_member_status`), a member if they wrote or pressed a button there,
        "left" for anyone else seen; in a private chat, its user. Unknown users: 400."""
        chat = self._chat(p)
        user_id = p.int("user_id", missing="user not found")
        bot = self.world.bot_user
        if user_id == bot["id"]:
            found = self.world.members.get(chat.id, {}).get(user_id)
            return found or {"status": "member", "user": bot}
        user = self.world.users.get(user_id or 0)
        if user is None:
            raise bad_request("user not found")
        if chat.type == "private":
            if user_id != chat.id:
                raise bad_request("user not found")
            return {"status": "member", "user": user}
        return self.world.members.get(chat.id, {}).get(user_id) or {"status": "left",
                                                                     "user": user}

    # --- bot settings --------------------------------------------------------------
    def set_my_commands(self, p: Params) -> bool:
        raw = p.json("commands")
        commands = validate_commands([] if raw is None else raw)
        self.world.commands[scope_key(p.json("scope"), p.get("language_code"))] = commands
        return True

    def get_my_commands(self, p: Params) -> list[dict[str, Any]]:
        return self.world.commands.get(scope_key(p.json("scope"), p.get("language_code")), [])

    def delete_my_commands(self, p: Params) -> bool:
        self.world.commands.pop(scope_key(p.json("scope"), p.get("language_code")), None)
        return True

    def set_my_description(self, p: Params) -> bool:
        return self._describe(p, "description", 512)

    def set_my_short_description(self, p: Params) -> bool:
        return self._describe(p, "short_description", 120)

    def _describe(self, p: Params, field: str, limit: int) -> bool:
        value = str(p.get(field) or "")
        if len(value) > limit:
            raise bad_request(f"{field} is too long")
        self.world.descriptions[f"{field}:{p.get('language_code') or ''}"] = value
        return True


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or GIF; None for anything else (or a broken header)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                          0xCF):  # start of frame: height, then width
                height = int.from_bytes(data[i + 5 : i + 7], "big")
                width = int.from_bytes(data[i + 7 : i + 9], "big")
                return (width, height) if width and height else None
            i += 2 + length
    return None
