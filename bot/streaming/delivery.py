"""Sending and editing answer parts so that Telegram accepts them, whatever the model wrote."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, ReplyParameters

from bot.formatting import Chunk, plain

log = logging.getLogger(__name__)

# Set while sending a stream frame: a frame hitting 429 is dropped by its caller, not retried.
_frame: contextvars.ContextVar[bool] = contextvars.ContextVar("chatmux_frame", default=False)


@contextlib.contextmanager
def frame_request() -> Iterator[None]:
    token = _frame.set(True)
    try:
        yield
    finally:
        _frame.reset(token)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Honour 429 `retry_after` by waiting and repeating the call (frames excepted)."""

    def __init__(self, max_attempts: int = 3, max_wait: float = 60.0) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if _frame.get() or attempt >= self.max_attempts or exc.retry_after > self.max_wait:
                    raise
                log.info("429 on %s: waiting %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                attempt += 1


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


def is_format_error(exc: TelegramBadRequest) -> bool:
    text = exc.message.lower()
    return "can't parse entities" in text or "entit" in text


async def send_part(
    bot: Bot, chat_id: int, part: Chunk, *, reply_markup: InlineKeyboardMarkup | None = None,
    reply_to: int | None = None, thread_id: int | None = None,
) -> int:
    """Send one part; if Telegram rejects its formatting, send the same text plain."""
    reply = (
        ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
    )
    for attempt in (part, plain(part)):
        try:
            sent = await bot.send_message(
                chat_id, attempt.text, entities=attempt.entities or None, parse_mode=None,
                reply_markup=reply_markup, reply_parameters=reply, message_thread_id=thread_id,
                link_preview_options=None,
            )
            return sent.message_id
        except TelegramBadRequest as exc:
            if attempt.entities and is_format_error(exc):
                log.warning("formatting rejected (%s); resending as plain text", exc.message)
                continue
            raise
    raise AssertionError("unreachable")


async def edit_part(
    bot: Bot, chat_id: int, message_id: int, part: Chunk,
    *, reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Edit one part in place; "not modified" is success; bad formatting falls back to plain."""
    for attempt in (part, plain(part)):
        try:
            await bot.edit_message_text(
                text=attempt.text, chat_id=chat_id, message_id=message_id,
                entities=attempt.entities or None, parse_mode=None, reply_markup=reply_markup,
            )
            return
        except TelegramBadRequest as exc:
            if is_not_modified(exc):
                return
            if attempt.entities and is_format_error(exc):
                continue
            raise
