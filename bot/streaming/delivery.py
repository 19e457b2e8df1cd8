"""Sending and editing answer parts so that Telegram accepts them, whatever the model wrote."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, ReplyParameters

from bot.formatting import Chunk, plain
from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

# Set while sending a stream frame: a frame hitting 429 is dropped by its caller, not retried.
_frame: contextvars.ContextVar[bool] = contextvars.ContextVar("chatmux_frame", default=False)

# The final delivery of an answer waits out 429s for up to this long in all, and retries a
# call that lost its connection (or met a Telegram 5xx) this many times, with backoff.
DELIVERY_PATIENCE = 120.0
NETWORK_RETRIES = 3
NETWORK_BACKOFF = 0.5  # seconds before the first retry; doubled each time
ANSWER_FILE = "answer.md"  # the rest of a very long answer


@contextlib.contextmanager
def frame_request() -> Iterator[None]:
    token = _frame.set(True)
    try:
        yield
    finally:
        _frame.reset(token)


@dataclass
class _Patience:
    deadline: float  # loop time
    network_retries: int

    def left(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


_patience: contextvars.ContextVar[_Patience | None] = contextvars.ContextVar(
    "chatmux_patience", default=None
)


@contextlib.contextmanager
def patient_delivery(patience: float = DELIVERY_PATIENCE,
                     network_retries: int = NETWORK_RETRIES) -> Iterator[None]:
    """Calls made inside (an answer's final delivery) wait out any 429 whose `retry_after`
    still fits in `patience` seconds, however many come, and retry network errors. Bounded:
    past that, the error reaches the caller, which marks the answer undelivered."""
    deadline = asyncio.get_running_loop().time() + patience
    token = _patience.set(_Patience(deadline, network_retries))
    try:
        yield
    finally:
        _patience.reset(token)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Honour 429 `retry_after` by waiting and repeating the call (frames excepted); inside
    `patient_delivery`, wait longer and retry network errors too. Every 429 is counted in
    `metrics`, if given."""

    def __init__(self, max_attempts: int = 3, max_wait: float = 60.0,
                 metrics: Metrics | None = None) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        attempt = 1
        patience = None if _frame.get() else _patience.get()
        backoff = NETWORK_BACKOFF
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if self.metrics is not None:
                    self.metrics.retry_after(type(method).__name__)
                if _frame.get():
                    raise
                if patience is not None:
                    if exc.retry_after > patience.left():
                        raise
                elif attempt >= self.max_attempts or exc.retry_after > self.max_wait:
                    raise
                log.info("429 on %s: waiting %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                attempt += 1
            except (TelegramNetworkError, TelegramServerError) as exc:
                if (patience is None or patience.network_retries <= 0
                        or backoff > patience.left()):
                    raise
                patience.network_retries -= 1
                log.info("%s failed (%s): retrying in %ss", type(method).__name__, exc.message,
                         backoff)
                await asyncio.sleep(backoff)
                backoff *= 2


class DeliveryFailed(Exception):
    """Telegram did not take all of an answer. `delivered`: the ids of the messages it did
    take (or that still show an earlier frame of it), in order."""

    def __init__(self, delivered: list[int], cause: TelegramAPIError) -> None:
        super().__init__(f"{type(cause).__name__}: {cause.message}")
        self.delivered = delivered
        self.cause = cause


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


def is_gone(exc: TelegramBadRequest) -> bool:
    """The message was deleted (by a user or an admin): it can be neither edited nor deleted."""
    text = exc.message.lower()
    return "message to edit not found" in text or "message to delete not found" in text


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


async def send_file(
    bot: Bot, chat_id: int, markdown: str, caption: str, *,
    reply_markup: InlineKeyboardMarkup | None = None, thread_id: int | None = None,
) -> int:
    """Send the rest of a long answer as a Markdown file, with a short caption."""
    sent = await bot.send_document(
        chat_id, BufferedInputFile(markdown.encode("utf-8"), filename=ANSWER_FILE),
        caption=caption or None, parse_mode=None, reply_markup=reply_markup,
        message_thread_id=thread_id,
    )
    return sent.message_id


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
