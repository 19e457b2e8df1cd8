"""``chatmux console``: the bot's real Dispatcher and handlers, driven from a terminal.

Lines typed by the user become real :class:`aiogram.types.Update` objects fed through
``Dispatcher.feed_update``; outgoing Bot API calls never leave the process — :class:`ConsoleSession`
renders them and answers with results of the right type, so no Telegram token is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TextIO, cast

from aiogram import Bot, Dispatcher
from aiogram import methods as tg
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import ClientDecodeError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    BufferedInputFile,
    FSInputFile,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from aiogram.utils.formatting import Text

logger = logging.getLogger(__name__)

BANNER = (
    "chatmux console — the real bot, no Telegram needed. Type a message and press Enter; "
    "try /start and /help. When the bot shows buttons, type a number to press one. "
    "Ctrl-D or /quit exits."
)
BOT_USERNAME = "chatmux_console_bot"
_RESET = "\x1b[0m"
_CLEAR_LINE = "\r\x1b[2K"
# entity type -> SGR code; other types (mentions, hashtags, blockquotes, …) render plain
_STYLES = {"bold": "1", "italic": "3", "underline": "4", "strikethrough": "9", "spoiler": "2"}
_STYLES |= {"code": "36", "pre": "36", "url": "4", "text_link": "4"}
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]+)?(?=\s|$)")
_BUTTON_NUMBER = re.compile(r"[0-9]{1,4}")


def render_text(text: str, entities: Sequence[MessageEntity] | None, *, color: bool) -> str:
    """Render ``text`` with Telegram entities as ANSI styles (plain when ``color`` is off).

    Offsets are UTF-16 code units; entities are clipped to the text and never split a
    surrogate pair, so odd entities degrade to plain text instead of crashing.
    ``text_link`` URLs are appended in parentheses in both modes.
    """
    units = text.encode("utf-16-le")
    size = len(units) // 2

    def snap(i: int) -> int:
        i = max(0, min(i, size))
        if 0 < i < size and 0xDC00 <= int.from_bytes(units[2 * i : 2 * i + 2], "little") <= 0xDFFF:
            i += 1  # inside a surrogate pair: move past its low half
        return i

    spans = []
    for ent in entities or ():
        start = snap(ent.offset)
        end = snap(ent.offset + max(ent.length, 0))
        if end > start:
            spans.append((start, end, ent))
    if not spans:
        return text
    cuts = sorted({0, size, *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    parts: list[str] = []
    for a, b in itertools.pairwise(cuts):
        chunk = units[2 * a : 2 * b].decode("utf-16-le", errors="replace")
        codes = dict.fromkeys(
            _STYLES[e.type] for s, end, e in spans if s <= a and b <= end and e.type in _STYLES
        )
        parts.append(f"\x1b[{';'.join(codes)}m{chunk}{_RESET}" if color and codes else chunk)
        parts.extend(f" ({e.url})" for _, end, e in spans if end == b and e.type == "text_link")
    return "".join(parts)


def _dump(obj: Any) -> Any:
    return obj.model_dump(mode="json", exclude_none=True) if obj is not None else None


def _file_size(file: InputFile) -> int | None:
    if isinstance(file, BufferedInputFile):
        return len(file.data)
    if isinstance(file, FSInputFile):
        with contextlib.suppress(OSError):
            return os.stat(file.path).st_size
    return None


class ConsoleSession(BaseSession):
    """An aiogram session that renders outgoing Bot API calls to a terminal instead of sending them.

    Handled: getMe, sendMessage, sendMessageDraft (live status line on a colour terminal, silent
    otherwise), editMessageText, editMessageReplyMarkup, answerCallbackQuery, sendDocument and
    deleteMessage. Any other method prints nothing and returns ``True`` (a bare Message for
    methods that return one, so ``await message.answer_photo(...)`` still yields a Message).
    Text is shown as sent: ``parse_mode`` markup is not parsed, entities are rendered.
    """

    def __init__(
        self, out: TextIO, *, user_id: int = 1, first_name: str = "You", color: bool | None = None
    ) -> None:
        super().__init__()
        self.out = out
        self.color = out.isatty() if color is None else color
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        self.chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        self.messages: dict[int, dict[str, Any]] = {}  # bot messages, as last rendered
        self.keyboard_message_id: int | None = None  # last bot message showing inline buttons
        self._ids = itertools.count(1)  # message ids, shared by both sides of the chat
        self._status = False  # a draft preview line is on screen

    def next_message_id(self) -> int:
        """Allocate the next message id of the chat."""
        return next(self._ids)

    def write(self, text: str, end: str = "\n") -> None:
        """Print ``text``, first clearing any draft preview line."""
        if self._status:
            self.out.write(_CLEAR_LINE)
            self._status = False
        self.out.write(text + end)
        self.out.flush()

    def you(self, text: str = "") -> str:
        """The user's side of the transcript: ``you › text``."""
        return f"{self._style('you', '1;32')} › {text}"

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of each pressable button of the last keyboard, in order."""
        msg = self.messages.get(self.keyboard_message_id or 0)
        rows = ((msg or {}).get("reply_markup") or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for r in rows for b in r if "callback_data" in b]

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}{_RESET}" if self.color else text

    def _who(self, chat: dict[str, Any], label: str = "chatmux") -> str:
        where = "" if chat["id"] == self.user["id"] else f" → {chat['id']}"
        return self._style(label + where, "1;35")

    def _chat_for(self, chat_id: int | str | None) -> dict[str, Any]:
        if chat_id is None or chat_id == self.user["id"]:
            return dict(self.chat)
        cid = chat_id if isinstance(chat_id, int) else -1
        return {"id": cid, "type": "private" if cid > 0 else "supergroup", "title": str(chat_id)}

    def _render_keyboard(self, msg: dict[str, Any]) -> None:
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard", [])
        if self.keyboard_message_id == msg["message_id"] or rows:
            self.keyboard_message_id = msg["message_id"] if rows else None
        number = itertools.count(1)
        for row in rows:
            cells = []
            for b in row:
                if "callback_data" in b:
                    cells.append(f"{self._style(f'[{next(number)}]', '1')} {b['text']}")
                elif "url" in b:
                    cells.append(f"[↗ {b['text']}: {b['url']}]")
                else:
                    cells.append(f"[{b['text']}]")
            self.write("  " + "   ".join(cells))

    def _new_message(
        self, bot: Bot, chat_id: int | str | None, message_id: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        msg = {
            "message_id": message_id or self.next_message_id(),
            "date": int(time.time()),
            "chat": self._chat_for(chat_id),
            "from": self._bot_user(bot),
            **{k: v for k, v in fields.items() if v is not None},
        }
        self.messages[msg["message_id"]] = msg
        return msg

    @staticmethod
    def _bot_user(bot: Bot) -> dict[str, Any]:
        return {"id": bot.id, "is_bot": True, "first_name": "chatmux", "username": BOT_USERNAME}

    def _answer(self, bot: Bot, method: TelegramMethod[TelegramType], result: Any) -> TelegramType:
        content = json.dumps({"ok": True, "result": result})
        response = self.check_response(bot=bot, method=method, status_code=200, content=content)
        return cast(TelegramType, response.result)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        """Render ``method`` and answer it like the Bot API would."""
        result: Any = True
        if isinstance(method, tg.GetMe):
            result = self._bot_user(bot)
        elif isinstance(method, tg.SendMessage):
            markup = method.reply_markup
            result = self._new_message(
                bot,
                method.chat_id,
                text=method.text,
                entities=[_dump(e) for e in method.entities or ()] or None,
                reply_markup=_dump(markup) if isinstance(markup, InlineKeyboardMarkup) else None,
            )
            body = render_text(method.text, method.entities, color=self.color)
            self.write(f"{self._who(result['chat'])} › {body}")
            self._render_keyboard(result)
        elif isinstance(method, tg.SendMessageDraft):
            self._draft(method.text or "")
        elif isinstance(method, tg.EditMessageText | tg.EditMessageReplyMarkup):
            if method.inline_message_id is not None or method.message_id is None:
                return self._answer(bot, method, True)
            mid = method.message_id  # a message sent before this run gets a stub
            msg = self.messages.get(mid) or self._new_message(bot, method.chat_id, message_id=mid)
            msg["edit_date"] = int(time.time())
            markup = method.reply_markup
            msg.pop("reply_markup", None)
            if isinstance(markup, InlineKeyboardMarkup):
                msg["reply_markup"] = _dump(markup)
            if isinstance(method, tg.EditMessageText):
                msg["text"] = method.text
                msg["entities"] = [_dump(e) for e in method.entities or ()] or None
                body = render_text(method.text, method.entities, color=self.color)
                self.write(f"{self._who(msg['chat'], 'chatmux (edited)')} › {body}")
            elif markup is None:
                self.write("  (buttons removed)")
            self._render_keyboard(msg)
            result = msg
        elif isinstance(method, tg.AnswerCallbackQuery):
            if method.text:
                self.write(f"  · {method.text}")
        elif isinstance(method, tg.SendDocument):
            doc = method.document
            name = (doc.filename or "file") if isinstance(doc, InputFile) else str(doc)
            size = _file_size(doc) if isinstance(doc, InputFile) else None
            result = self._new_message(
                bot,
                method.chat_id,
                caption=method.caption,
                document={
                    "file_id": f"console-{uuid.uuid4().hex}",
                    "file_unique_id": uuid.uuid4().hex[:16],
                    "file_name": name,
                    "file_size": size,
                },
            )
            shown = "?" if size is None else str(size)
            caption = f" — {method.caption}" if method.caption else ""
            self.write(f"{self._who(result['chat'])} sent a file: {name} ({shown} bytes){caption}")
        elif isinstance(method, tg.DeleteMessage):
            self.messages.pop(method.message_id, None)
            if self.keyboard_message_id == method.message_id:
                self.keyboard_message_id = None
        elif method.__returning__ is Message:  # unrendered: a bare Message of the right type
            result = self._new_message(bot, getattr(method, "chat_id", None))
        try:
            return self._answer(bot, method, result)
        except ClientDecodeError:  # an unrendered method whose result is not a bool
            return cast(TelegramType, True)

    def _draft(self, text: str) -> None:
        """Show the latest draft on one rewritten status line (colour terminals only)."""
        if not self.color:
            return
        prefix = "chatmux … "
        width = shutil.get_terminal_size().columns - len(prefix) - 1
        line = (text.rstrip().splitlines() or ["(thinking)"])[-1]
        if len(line) > width:
            line = "…" + line[-max(width - 1, 0) :]
        self.out.write(_CLEAR_LINE + self._style(prefix + line, "2"))
        self.out.flush()
        self._status = True

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        """Not supported: the console cannot download files."""
        raise NotImplementedError("the console session cannot download files")
        yield b""  # pragma: no cover

    async def close(self) -> None:
        """Nothing to close."""


def _env_language() -> str:
    match = re.match(r"([a-z]{2})(?:[_.@]|$)", os.environ.get("LANG", ""), re.IGNORECASE)
    return match.group(1).lower() if match else "en"


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines of stdin, read by a daemon thread so Ctrl-C never waits for Enter."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        # Bytes in, decoded leniently: a stray non-UTF-8 byte becomes U+FFFD instead of
        # killing this thread (strict locale) or reaching the bot as a lone surrogate (C locale).
        stream = getattr(sys.stdin, "buffer", None)
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            if stream is None:
                for line in iter(sys.stdin.readline, ""):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            else:
                for raw in iter(stream.readline, b""):
                    line = raw.decode("utf-8", errors="replace")
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="chatmux-console-stdin", daemon=True).start()
    while line := await queue.get():
        yield line


async def _show_notice(session: ConsoleSession,
                       notice: Callable[[str], Awaitable[Text | None]], lang: str) -> None:
    try:
        text = await notice(lang)
    except Exception:  # a failed check must not keep the console from starting
        logger.exception("the start-up notice failed")
        return
    if text is not None:
        shown = text.as_kwargs()
        session.write(render_text(shown["text"], shown["entities"], color=session.color))


async def run_console(
    dispatcher: Dispatcher,
    *,
    lines: AsyncIterator[str] | None = None,
    out: TextIO | None = None,
    language_code: str | None = None,
    notice: Callable[[str], Awaitable[Text | None]] | None = None,
    **workflow_kwargs: Any,
) -> None:
    """Run ``dispatcher`` against a terminal chat until EOF or ``/quit``.

    ``lines`` defaults to stdin; ``out`` to stdout; ``language_code`` to ``$LANG`` (else "en").
    ``notice(language_code)`` may give a text shown after the banner (the first-run guide).
    ``workflow_kwargs`` reach startup/shutdown hooks, middlewares and handlers by name, as with
    ``start_polling``.
    """
    if "bot" in workflow_kwargs:
        raise ValueError("'bot' is created by the console and cannot be passed")
    out = out or sys.stdout
    interactive = lines is None and sys.stdin.isatty()
    session = ConsoleSession(out)
    bot = Bot("1000:console", session=session)
    lang = language_code or _env_language()
    user = {**session.user, "language_code": lang}
    workflow_data = {
        "dispatcher": dispatcher,
        "bots": (bot,),
        **dispatcher.workflow_data,
        **workflow_kwargs,
    }
    update_ids = itertools.count(1)
    await dispatcher.emit_startup(bot=bot, **workflow_data)
    try:
        session.write(BANNER)
        if notice is not None:
            await _show_notice(session, notice, lang)
        source = aiter(lines if lines is not None else _stdin_lines())
        while True:
            if interactive:
                session.write(session.you(), end="")
            try:
                text = (await anext(source)).strip()
            except StopAsyncIteration:
                if interactive:
                    session.write("")
                break
            if text == "/quit":
                break
            if not text:
                continue
            buttons = session.buttons()
            # ASCII digits only: "²" is a digit to str.isdigit() but not a number to int().
            number = int(text) if _BUTTON_NUMBER.fullmatch(text) else 0
            if 1 <= number <= len(buttons):
                label, data = buttons[number - 1]
                if not interactive:
                    session.write(session.you(f"[{text}] {label}"))
                event: dict[str, Any] = {
                    "callback_query": {
                        "id": uuid.uuid4().hex,
                        "from": user,
                        "message": session.messages[cast(int, session.keyboard_message_id)],
                        "chat_instance": "console",
                        "data": data,
                    }
                }
            else:
                if not interactive:
                    session.write(session.you(text))
                message: dict[str, Any] = {
                    "message_id": session.next_message_id(),
                    "date": int(time.time()),
                    "chat": session.chat,
                    "from": user,
                    "text": text,
                }
                if command := _COMMAND.match(text):
                    length = len(command.group())  # ASCII only, so UTF-16 length too
                    message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
                event = {"message": message}
            update = Update.model_validate(
                {"update_id": next(update_ids), **event}, context={"bot": bot}
            )
            try:
                await dispatcher.feed_update(bot, update, bots=(bot,), **workflow_kwargs)
            except Exception as exc:  # keep the chat alive, like polling does
                logger.exception("Update id=%s failed", update.update_id)
                session.write(f"chatmux ✗ {type(exc).__name__}: {exc}")
    finally:
        session.write("", end="")  # drop a dangling draft line
        try:
            await dispatcher.emit_shutdown(bot=bot, **workflow_data)
        finally:
            await bot.session.close()
