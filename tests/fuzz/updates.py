"""Random Telegram updates built on the fake Bot API's world (so the chats and messages they
mention exist there and the bot's replies are accepted), then bent out of shape."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.fakes.telegram import simulate
from tests.fakes.telegram.models import ChatMessage
from tests.fakes.telegram_api import FakeTelegram
from tests.fuzz.harness import ADMIN, GROUP, USERS
from tests.fuzz.strategies import (
    ADMIN_COMMANDS,
    USER_COMMANDS,
    command_text,
    entities,
    json_values,
    texts,
)

SMALL_GROUP = -4001
FORUM = -1009999999999
CHANNEL = -1008888888888
WHERE = ("private", "private", "group", "supergroup", "forum", "channel")
CONTENT = ("text", "text", "command", "sticker", "photo", "voice", "document", "location")
EXTRAS = ("forward", "via_bot", "sender_chat", "no_from", "edited", "reply_missing",
          "automatic_forward", "quote", "bot_sender", "media_group")


def _forum_topic(telegram: FakeTelegram) -> int:
    chat = telegram.world.chats.get(FORUM)
    if chat is None or not chat.topics:
        return telegram.create_topic(FORUM, "fuzz", user_id=USERS[0])
    return next(iter(chat.topics))


def message_update(data: st.DataObject, telegram: FakeTelegram) -> dict[str, Any]:
    """A message (or edited message, or channel post) someone sends, of a random shape; or
    a press of a draft's stop button with a random draft id."""
    where = data.draw(st.sampled_from(WHERE), label="where")
    if where == "private" and data.draw(st.integers(0, 7), label="stop") == 0:
        stop: dict[str, Any] = {"chat": {"id": ADMIN, "type": "private", "first_name": "A"},
                                "draft_id": data.draw(st.integers(-(2**63), 2**63 - 1))}
        if data.draw(st.booleans()):
            stop["message_thread_id"] = data.draw(st.integers(-5, 2**31))
        return {"stopped_message_generation": stop}
    content = data.draw(st.sampled_from(CONTENT), label="content")
    extras = data.draw(st.sets(st.sampled_from(EXTRAS), max_size=3), label="extras")
    sender = data.draw(st.sampled_from((ADMIN, *USERS)) | st.integers(1, 2**52), label="from")
    language = data.draw(st.sampled_from(["en", "ru", None, "zz", "pt-br", "x" * 16]))
    if content == "command":
        text: str | None = data.draw(command_text(USER_COMMANDS + ADMIN_COMMANDS))
    else:
        text = data.draw(texts(), label="text")
        if where != "private" and data.draw(st.booleans()):
            text = f"@chatmux_test_bot {text}"  # addressed to the bot in a group
    marks = data.draw(st.none() | entities(text or ""), label="entities")
    chat_id = {"private": sender, "group": SMALL_GROUP, "supergroup": GROUP,
               "forum": FORUM, "channel": CHANNEL}[where]
    user = simulate.user_dict(sender, "Fuzz", None, language)
    world = telegram.world
    if where == "channel":
        chat = simulate.ensure_chat(world, chat_id, "channel", user, "Fuzz channel")
        message = world.add_message(chat_id, ChatMessage(0, from_bot=False, text=text or "x",
                                                         entities=marks or []))
        payload = world.message_dict(chat_id, message)
        payload.pop("from")
        payload["sender_chat"] = chat.as_dict()
        return {"channel_post": payload}
    thread = _forum_topic(telegram) if where == "forum" else None
    chat_type = {"forum": "supergroup"}.get(where, where)
    sticker = content == "sticker"
    update = simulate.user_sends(
        world, None if sticker else (text or " "), chat_id=chat_id, user=user,
        chat_type=chat_type, chat_title=None, reply_to_message_id=None, entities=marks,
        sticker=sticker, photo=content == "photo", thread_id=thread)
    message = update["message"]
    world.updates.remove(update)  # fed directly, not polled
    if content in ("voice", "document", "location"):
        message.pop("text", None)
        message.pop("entities", None)
        message[content] = {
            # A file the fake has never seen: downloading it fails.
            "voice": {"file_id": "AwACAgIAAxkBAAInone", "file_unique_id": "none",
                      "duration": data.draw(st.integers(0, 10**6))},
            "document": {"file_id": "BQACAgIAAxkBAAInone", "file_unique_id": "none",
                         "file_name": data.draw(texts(40)) or "x",
                         "mime_type": data.draw(st.sampled_from(["image/png", "text/plain",
                                                                 "image/svg+xml", ""]))},
            "location": {"latitude": 0.0, "longitude": 0.0},
        }[content]
        if content == "document" and text:
            message["caption"] = text[:1024]
    _bend(data, message, extras, chat_id)
    if "edited" in extras:
        message["edit_date"] = message["date"] + 1
        return {"edited_message": message}
    return {"message": message}


def _bend(data: st.DataObject, message: dict[str, Any], extras: set[str], chat_id: int) -> None:
    if "forward" in extras:
        message["forward_origin"] = data.draw(st.sampled_from([
            {"type": "user", "date": 1, "sender_user": {"id": 42, "is_bot": False,
                                                        "first_name": "Someone"}},
            {"type": "hidden_user", "date": 1, "sender_user_name": "\u202eHidden"},
            {"type": "channel", "date": 1, "message_id": 7,
             "chat": {"id": CHANNEL, "type": "channel", "title": "C"}},
        ]))
    if "via_bot" in extras:
        message["via_bot"] = {"id": 99, "is_bot": True, "first_name": "Inline",
                              "username": "inline_bot"}
    if "sender_chat" in extras:
        message["sender_chat"] = data.draw(st.sampled_from([
            {"id": chat_id, "type": "supergroup", "title": "G"},
            {"id": CHANNEL, "type": "channel", "title": "C"},
        ]))
    if "no_from" in extras:
        message.pop("from", None)
    if "bot_sender" in extras and "from" in message:
        message["from"] = {**message["from"], "is_bot": True}
    if "reply_missing" in extras:
        message["reply_to_message"] = {
            "message_id": 10**9, "date": 1, "chat": message["chat"],
            "from": data.draw(st.sampled_from([
                {"id": 123456, "is_bot": True, "first_name": "chatmux",
                 "username": "chatmux_test_bot"},
                {"id": 5, "is_bot": False, "first_name": "X"}])),
            "text": data.draw(texts(50)) or "x"}
    if "automatic_forward" in extras:
        message["is_automatic_forward"] = True
    if "quote" in extras:
        message["quote"] = {"text": "q", "position": data.draw(st.integers(-5, 10**6))}
    if "media_group" in extras:
        message["media_group_id"] = data.draw(st.sampled_from(["1", "album"]))


def mutate(data: st.DataObject, value: Any) -> Any:
    """`value` (an update) with one to three changes deep inside: a key dropped, a value of
    the wrong type, an unknown key added."""
    value = copy.deepcopy(value)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(value, ()))
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        how = data.draw(st.sampled_from(["drop", "replace", "add"]), label="how")
        if how == "drop" and len(path) > 0:
            del parent[path[-1]]
        elif how == "replace":
            parent[path[-1]] = data.draw(json_values, label="value")
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10), label="key")] = data.draw(json_values)
    return value


def _paths(value: Any, prefix: tuple) -> Any:
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))
