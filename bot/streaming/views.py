"""How a streamed answer appears in Telegram: drafts in private chats, edits in groups."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup

from bot.formatting import Chunk, frame_parts, frame_tail, layout, plain
from bot.streaming.delivery import (
    DeliveryFailed,
    edit_part,
    frame_request,
    is_gone,
    send_file,
    send_part,
)
from storage.shared_state import SharedState

log = logging.getLogger(__name__)


class AnswerView(Protocol):
    async def show(self, markdown: str) -> None:
        """A progress frame. May be dropped (rate limits); never raises for Telegram reasons."""

    async def keepalive(self) -> None:
        """Called when nothing new arrived for a while."""

    async def finish(
        self, markdown: str, *, reply_markup: InlineKeyboardMarkup | None = None,
        file_caption: str = "",
    ) -> list[int]:
        """Deliver the final answer (`bot.formatting.layout`: a few messages, then the rest as
        a file with `file_caption`), the buttons under the last thing delivered. Returns the
        Telegram message ids, in order. Raises `DeliveryFailed` (with the ids that did get
        through) if Telegram did not take it all."""


class _Paused:
    """Drop frames until a 429's retry_after has passed."""

    def __init__(self) -> None:
        self._until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self._until

    def hit(self, exc: TelegramRetryAfter) -> None:
        self._until = time.monotonic() + exc.retry_after


class DraftView:
    """Private chats: animated `sendMessageDraft` frames, then the final `sendMessage`s."""

    def __init__(self, bot: Bot, chat_id: int, *, reply_to: int | None = None,
                 thread_id: int | None = None, header: Chunk | None = None) -> None:
        self.bot, self.chat_id, self.reply_to, self.thread_id = bot, chat_id, reply_to, thread_id
        self.header = header
        self.draft_id = secrets.randbelow(2**31 - 2) + 1
        self._paused = _Paused()
        self._last: Chunk | None = None
        self._disabled = False

    async def _draft(self, part: Chunk, draft_id: int) -> None:
        if self._disabled or self._paused.active():
            return
        for attempt in (part, plain(part)):
            try:
                with frame_request():
                    await self.bot.send_message_draft(
                        chat_id=self.chat_id, draft_id=draft_id, text=attempt.text,
                        entities=attempt.entities or None, parse_mode=None, can_stop=True,
                        message_thread_id=self.thread_id,
                    )
                return
            except TelegramRetryAfter as exc:
                self._paused.hit(exc)
                return
            except (TelegramBadRequest, TelegramForbiddenError) as exc:
                if attempt.entities and isinstance(exc, TelegramBadRequest):
                    continue
                log.warning("drafts refused in chat %s (%s); no more frames", self.chat_id,
                            exc.message)
                self._disabled = True
                return
            except TelegramAPIError as exc:  # a lost connection, a 5xx: skip this frame
                log.info("draft frame lost in chat %s: %s", self.chat_id, exc.message)
                return

    async def start(self) -> None:
        """The "Thinking…" placeholder (empty draft text), or the header alone."""
        await self._draft(self.header or Chunk(""), self.draft_id)

    async def show(self, markdown: str) -> None:
        tail = frame_tail(markdown, self.header) if markdown.strip() else None
        if tail is None:
            return
        # Long answers: the draft shows the part being written; a new id per part replaces it.
        number, self._last = tail
        await self._draft(self._last, self.draft_id + number)

    async def keepalive(self) -> None:
        # Drafts expire after ~30 s without an update.
        await self._draft(self._last or Chunk(""), self.draft_id)

    async def finish(
        self, markdown: str, *, reply_markup: InlineKeyboardMarkup | None = None,
        file_caption: str = "",
    ) -> list[int]:
        plan = layout(markdown, self.header)
        parts = plan.parts
        ids: list[int] = []
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1 and plan.rest is None
                ids.append(
                    await send_part(
                        self.bot, self.chat_id, part,
                        reply_markup=reply_markup if last else None,
                        reply_to=self.reply_to if i == 0 else None, thread_id=self.thread_id,
                    )
                )
            if plan.rest is not None:
                ids.append(await send_file(self.bot, self.chat_id, plan.rest, file_caption,
                                           reply_markup=reply_markup, thread_id=self.thread_id))
        except TelegramAPIError as exc:
            raise DeliveryFailed(ids, exc) from exc
        return ids


class EditView:
    """Groups (no drafts there): send a message, then edit it as text grows, within budget."""

    def __init__(self, bot: Bot, chat_id: int, state: SharedState, *, edits_per_minute: int,
                 reply_to: int | None = None, thread_id: int | None = None,
                 header: Chunk | None = None) -> None:
        self.bot, self.chat_id, self.state = bot, chat_id, state
        self.header = header
        self.edits_per_minute = edits_per_minute
        self.reply_to, self.thread_id = reply_to, thread_id
        self._sent: list[tuple[int, tuple]] = []  # (message id, content key shown)
        self._paused = _Paused()

    async def _budget(self) -> bool:
        wait = await self.state.take_slot(f"edits:{self.chat_id}", self.edits_per_minute, 60.0)
        return wait == 0

    async def _sync(self, parts: list[Chunk], reply_markup: InlineKeyboardMarkup | None,
                    final: bool) -> None:
        for i, part in enumerate(parts):
            markup = reply_markup if final and i == len(parts) - 1 else None
            key = (part.key(), bool(markup))
            if i < len(self._sent):
                message_id, shown = self._sent[i]
                if shown == key:
                    continue
                if not final and not await self._budget():
                    return
                try:
                    await edit_part(self.bot, self.chat_id, message_id, part,
                                    reply_markup=markup)
                except TelegramBadRequest as exc:
                    if not is_gone(exc):
                        raise
                    # Someone deleted the message being edited: the part goes out anew.
                    log.info("part %s in chat %s was deleted; sending it again", message_id,
                             self.chat_id)
                    message_id = await send_part(
                        self.bot, self.chat_id, part, reply_markup=markup,
                        reply_to=self.reply_to if i == 0 else None, thread_id=self.thread_id,
                    )
                self._sent[i] = (message_id, key)
            else:
                if not final and not await self._budget():
                    return
                message_id = await send_part(
                    self.bot, self.chat_id, part, reply_markup=markup,
                    reply_to=self.reply_to if i == 0 else None, thread_id=self.thread_id,
                )
                self._sent.append((message_id, key))

    async def show(self, markdown: str) -> None:
        # Nothing but whitespace yet: no message (an arena header alone would be left behind
        # as a stub if the answer never gets any text).
        if self._paused.active() or not markdown.strip():
            return
        try:
            with frame_request():
                # No more messages than a final answer keeps (the rest would go to a file).
                await self._sync(frame_parts(markdown, self.header), None, final=False)
        except TelegramRetryAfter as exc:
            self._paused.hit(exc)
        except TelegramAPIError as exc:  # refused, or lost on the way: the next frame may do
            log.warning("frame refused in chat %s: %s", self.chat_id, exc.message)

    async def keepalive(self) -> None:
        return None

    async def finish(
        self, markdown: str, *, reply_markup: InlineKeyboardMarkup | None = None,
        file_caption: str = "",
    ) -> list[int]:
        plan = layout(markdown, self.header)
        parts = plan.parts
        try:
            await self._sync(parts, reply_markup if plan.rest is None else None, final=True)
        except TelegramAPIError as exc:
            raise DeliveryFailed([message_id for message_id, _ in self._sent], exc) from exc
        # A shorter final rendering leaves stale extra messages: delete them.
        for message_id, _ in self._sent[len(parts):]:
            try:
                await self.bot.delete_message(self.chat_id, message_id)
            except TelegramAPIError:
                log.info("could not delete stale part %s in chat %s", message_id, self.chat_id)
        del self._sent[len(parts):]
        ids = [message_id for message_id, _ in self._sent]
        if plan.rest is not None:
            try:
                ids.append(await send_file(self.bot, self.chat_id, plan.rest, file_caption,
                                           reply_markup=reply_markup, thread_id=self.thread_id))
            except TelegramAPIError as exc:
                raise DeliveryFailed(ids, exc) from exc
        return ids
