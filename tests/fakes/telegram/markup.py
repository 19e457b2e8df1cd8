"""Validation of reply markup, bot commands and command scopes."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import ApiError, bad_request
from .textutil import check_link

NOT_ACTIONS = frozenset({"text", "icon_custom_emoji_id", "style"})
BUTTON_STYLES = frozenset({"danger", "success", "primary"})
MAX_BUTTONS = 100
MAX_ROW = 8
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
SCOPES = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


def _button_error(reason: str) -> ApiError:
    return bad_request(f"can't parse inline keyboard button: {reason}")


def validate_inline_button(button: Any) -> dict[str, Any]:
    """One InlineKeyboardButton: non-empty text and exactly one action."""
    if not isinstance(button, dict):
        raise _button_error("InlineKeyboardButton must be an Object")
    button = {k: v for k, v in button.items() if v is not None}
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [k for k in button if k not in NOT_ACTIONS]
    if not actions:
        raise _button_error("Text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        raise _button_error(f"exactly one action field must be used, got {sorted(actions)}")
    if "style" in button and button["style"] not in BUTTON_STYLES:
        raise _button_error(f'wrong button style "{button["style"]}"')
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str):
            raise _button_error('Field "callback_data" must be of type String')
        if not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and (
        not isinstance(button["url"], str) or check_link(button["url"]) is None
    ):
        raise bad_request("BUTTON_URL_INVALID")
    return button


def validate_reply_markup(markup: Any, *, inline_only: bool = False) -> dict[str, Any] | None:
    """Validate ``reply_markup``; returns the inline keyboard to show, or None."""
    if markup is None:
        return None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request('Field "inline_keyboard" must be of type Array of Array')
        if sum(map(len, rows)) > MAX_BUTTONS or any(len(r) > MAX_ROW for r in rows):
            raise bad_request("reply markup is too long")
        clean = [[validate_inline_button(b) for b in row] for row in rows]
        clean = [row for row in clean if row]
        return {"inline_keyboard": clean} if clean else None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request('Field "keyboard" must be of type Array of Array')
        for row in rows:
            for button in row:
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise bad_request("BUTTON_TEXT_INVALID")
        return None
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return None
    raise bad_request("can't parse reply keyboard markup JSON object")


def validate_commands(commands: Any) -> list[dict[str, str]]:
    """setMyCommands' list: ≤100 commands, [a-z0-9_]{1,32}, description 1–256."""
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > 100:
        raise bad_request("too many commands")
    result = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name, description = command.get("command"), command.get("description")
        if not isinstance(name, str) or not _COMMAND.fullmatch(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not description.strip():
            raise bad_request("command description is empty")
        if len(description) > 256:
            raise bad_request("command description is too long")
        result.append({k: v for k, v in command.items() if v is not None})
    return result


def scope_key(scope: Any, language_code: Any) -> str:
    """Storage key for a command scope: "default" or the scope's JSON, plus ":<lang>"."""
    if scope is None:
        scope = {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in SCOPES:
        raise bad_request("can't parse BotCommandScope JSON object")
    for needed in SCOPES[scope["type"]]:
        if scope.get(needed) in (None, ""):
            raise bad_request(f"{needed} is empty")
    key = "default" if scope["type"] == "default" else json.dumps(scope, sort_keys=True)
    if language_code:
        if not isinstance(language_code, str) or not re.fullmatch(r"[a-z]{2}", language_code):
            raise bad_request("LANG_CODE_INVALID")
        key += f":{language_code}"
    return key
