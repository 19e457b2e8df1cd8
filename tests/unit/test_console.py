"""Tests for ``chatmux console`` (bot/console.py): a real Dispatcher driven from text lines."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    MessageEntity,
)
from aiogram.utils.formatting import Bold, Text

from bot.console import ConsoleSession, render_text, run_console

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Pick(CallbackData, prefix="pick"):
    model: str


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def build_dispatcher(seen: list[Any]) -> Dispatcher:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message, greeting: str) -> None:
        seen.append(("start", message.entities, message.from_user.language_code))
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="GPT-4o ✓", callback_data=Pick(model="gpt").pack()),
                    InlineKeyboardButton(text="Llama 3", callback_data=Pick(model="llama").pack()),
                ],
                [InlineKeyboardButton(text="Docs", url="https://example.org/docs")],
            ]
        )
        await message.answer(greeting, reply_markup=keyboard)

    @router.callback_query(Pick.filter())
    async def pick(query: CallbackQuery, callback_data: Pick) -> None:
        seen.append(("pick", callback_data.model, query.message.text))
        await query.message.edit_text(f"Model: {callback_data.model}")
        await query.answer(f"Switched to {callback_data.model}")

    @router.message(Command("fail"))
    async def fail(message: Message) -> None:
        raise RuntimeError("boom")

    @router.message(Command("file"))
    async def file(message: Message) -> None:
        sent = await message.answer_document(BufferedInputFile(b"12345", filename="a.txt"))
        seen.append(("file", sent.document.file_name, sent.document.file_size))
        # an unrendered method: prints nothing, still returns a Message
        invoice = await message.answer_invoice(
            "t", "d", "p", currency="XTR", prices=[LabeledPrice(label="x", amount=1)]
        )
        seen.append(("invoice", type(invoice).__name__))
        await message.delete()

    @router.message(Command("echo"))
    async def echo(message: Message, command: CommandObject) -> None:
        await message.answer(f"echo {command.args}")

    @router.message(F.text)
    async def chat(message: Message, bot: Bot, llm: str) -> None:
        await bot.send_message_draft(message.chat.id, draft_id=7, text="Hel")
        await bot.send_message_draft(message.chat.id, draft_id=7, text="Hello from")
        await message.answer(**Text("Hello from ", Bold(llm), "!").as_kwargs())

    dp = Dispatcher(greeting="hi")
    dp.include_router(router)

    @dp.startup()
    async def on_startup(bot: Bot, llm: str, greeting: str) -> None:
        seen.append(("startup", bot.id, llm, greeting))

    @dp.shutdown()
    async def on_shutdown(llm: str) -> None:
        seen.append(("shutdown", llm))

    return dp


async def feed(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line + "\n"


async def run(*lines: str, out: io.StringIO | None = None, **kwargs: Any) -> tuple[str, list]:
    seen: list[Any] = []
    out = out if out is not None else io.StringIO()
    kwargs.setdefault("llm", "fake-llm")
    await run_console(build_dispatcher(seen), lines=feed(*lines), out=out, **kwargs)
    return out.getvalue(), seen


async def test_transcript_keyboard_callback_and_stream() -> None:
    text, seen = await run("/start", "", "2", "hello there", language_code="de")

    assert "/start" in text.splitlines()[0] and "/quit exits" in text.splitlines()[0]
    assert "\x1b" not in text  # StringIO is not a tty: plain text, no draft previews
    assert "chatmux › hi" in text
    assert "  [1] GPT-4o ✓   [2] Llama 3" in text
    assert "[↗ Docs: https://example.org/docs]" in text
    assert "you › [2] Llama 3" in text
    assert "chatmux (edited) › Model: llama" in text
    assert "  · Switched to llama" in text
    assert "Hel\n" not in text and "chatmux › Hello from fake-llm!" in text
    start, picked = seen[1], seen[2]
    assert start[0] == "start" and start[2] == "de"
    assert [(e.type, e.offset, e.length) for e in start[1]] == [("bot_command", 0, 6)]
    assert picked == ("pick", "llama", "hi")  # callback message = the bot message as rendered
    assert seen[0] == ("startup", 1000, "fake-llm", "hi")  # workflow kwargs + workflow_data
    assert seen[-1] == ("shutdown", "fake-llm")


async def test_numbers_without_matching_button_are_text() -> None:
    text, seen = await run("1", "/start", "9", "1", "1")
    assert "you › 1\nchatmux › Hello from fake-llm!" in text  # no keyboard yet
    assert "you › 9\nchatmux › Hello from fake-llm!" in text  # out of range
    assert [s[:2] for s in seen if s[0] == "pick"] == [("pick", "gpt")]  # edit removed buttons
    assert text.count("you › 1\n") == 2


async def test_digits_that_are_not_ascii_numbers_are_text() -> None:
    # "²" and "٣" are digits to str.isdigit(); 5000 nines are too long for int().
    huge = "9" * 5000
    text, seen = await run("/start", "²", "/start", "٣", "/start", huge, "/start", "1")
    assert "you › ²\nchatmux › Hello from fake-llm!" in text
    assert "you › ٣\nchatmux › Hello from fake-llm!" in text
    assert f"you › {huge}\nchatmux › Hello from fake-llm!" in text
    assert [s[:2] for s in seen if s[0] == "pick"] == [("pick", "gpt")]
    assert seen[-1] == ("shutdown", "fake-llm")


async def test_quit_stops_and_errors_do_not() -> None:
    text, seen = await run("/fail", "/echo a b", "/quit", "never")
    assert "chatmux ✗ RuntimeError: boom" in text
    assert "chatmux › echo a b" in text
    assert "never" not in text and seen[-1] == ("shutdown", "fake-llm")


async def test_document_delete_and_unrendered_methods() -> None:
    text, seen = await run("/file")
    assert "chatmux sent a file: a.txt (5 bytes)" in text
    assert ("file", "a.txt", 5) in seen and ("invoice", "Message") in seen


async def test_color_terminal_renders_entities_and_draft_line() -> None:
    out = TTY()
    text, _ = await run("hi", out=out)
    assert "\r\x1b[2K" in text and "Hello from" in text
    assert "\x1b[1mfake-llm\x1b[0m" in text
    assert "chatmux › Hello from fake-llm!" in ANSI.sub("", text)


async def test_language_from_env(monkeypatch: Any) -> None:
    monkeypatch.setenv("LANG", "pt_BR.UTF-8")
    _, seen = await run("/start")
    assert seen[1][2] == "pt"
    monkeypatch.setenv("LANG", "C.UTF-8")
    _, seen = await run("/start")
    assert seen[1][2] == "en"


def ent(kind: str, offset: int, length: int, **kw: Any) -> MessageEntity:
    return MessageEntity(type=kind, offset=offset, length=length, **kw)


def test_render_text_utf16_offsets_and_odd_entities() -> None:
    # "🙂" is two UTF-16 code units, so "ok" starts at offset 3
    assert render_text("🙂 ok", [ent("bold", 3, 2)], color=True) == "🙂 \x1b[1mok\x1b[0m"
    assert render_text("abc", [ent("italic", 1, 99), ent("bold", 7, 3)], color=True) == (
        "a\x1b[3mbc\x1b[0m"
    )
    # an entity ending inside a surrogate pair never splits the emoji
    assert render_text("a🙂b", [ent("code", 0, 2)], color=True) == "\x1b[36ma🙂\x1b[0mb"
    assert render_text("x", [ent("bold", -5, 3), ent("bold", 0, -1)], color=True) == "x"
    assert render_text("go", [ent("text_link", 0, 2, url="https://x.y")], color=False) == (
        "go (https://x.y)"
    )
    nested = render_text("abc", [ent("bold", 0, 3), ent("underline", 1, 1)], color=True)
    assert nested == "\x1b[1ma\x1b[0m\x1b[1;4mb\x1b[0m\x1b[1mc\x1b[0m"


async def test_session_answers_with_real_objects() -> None:
    out = io.StringIO()
    bot = Bot("1:console", session=ConsoleSession(out))
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (1, True, "chatmux_console_bot")
    assert await bot.set_my_commands([]) is True
    assert await bot.send_chat_action(1, "typing") is True
    first = await bot.send_message(1, "one")
    second = await bot.send_message(1, "two")
    assert second.message_id == first.message_id + 1 and second.from_user.is_bot
    edited = await bot.edit_message_reply_markup(chat_id=1, message_id=first.message_id)
    assert isinstance(edited, Message) and edited.text == "one"
    assert out.getvalue() == "chatmux › one\nchatmux › two\n  (buttons removed)\n"
