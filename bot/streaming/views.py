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
from aiogram.types import InlineKeyboardMarkup, InputRichMessage, ReplyParameters

from bot.formatting import (
    REASONING_SHOWN,
    Chunk,
    frame_parts,
    frame_tail,
    layout,
    live_reasoning,
    plain,
    reasoning_quote,
    shorten,
    with_reasoning,
)
from bot.streaming.delivery import (
    DeliveryFailed,
    edit_part,
    frame_request,
    is_gone,
    send_file,
    send_part,
)
from bot.streaming.rich import RichGate, fits, needs_rich, rich_markdown
from bot.texts import t
from storage.shared_state import SharedState

log = logging.getLogger(__name__)


TYPING_EVERY = 4.5  # seconds: a chat action shows for about 5


def answer_header(header: Chunk | None, reasoning: str | None, lang: str) -> Chunk | None:
    """What goes above an answer's text in its first part: the (arena) header, then the
    model's reasoning, collapsed (`reasoning_quote`)."""
    if not reasoning or not reasoning.strip():
        return header
    return with_reasoning(header, reasoning_quote(reasoning, t("reasoning_label", lang)))


class AnswerView(Protocol):
    async def show(self, markdown: str, reasoning: str = "") -> None:
        """A progress frame: the answer so far, or while there is none (`markdown` empty)
        the reasoning so far. May be dropped (rate limits); never raises for Telegram
        reasons."""

    async def keepalive(self) -> None:
        """Called when nothing new arrived for a while."""

    async def finish(
        self, markdown: str, *, reasoning: str = "",
        reply_markup: InlineKeyboardMarkup | None = None, file_caption: str = "",
    ) -> list[int]:
        """Deliver the final answer (`bot.formatting.layout`: a few messages, then the rest as
        a file with `file_caption`; the reasoning collapsed above the first), the buttons
        under the last thing delivered. Returns the
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


class _Headers:
    """An answer's first-part header for the reasoning so far (built again only as it grows:
    once the answer streams, the reasoning is done)."""

    def __init__(self, header: Chunk | None, lang: str) -> None:
        self.header, self.lang = header, lang
        self._for: tuple[int, Chunk | None] = (0, header)

    def __call__(self, reasoning: str) -> Chunk | None:
        if len(reasoning) != self._for[0]:
            self._for = (len(reasoning), answer_header(self.header, reasoning, self.lang))
        return self._for[1]


class DraftView:
    """Private chats: animated `sendMessageDraft` frames, then the final `sendMessage`s.

    With `rich` open, an answer that needs it (`bot.streaming.rich.needs_rich`) streams as
    `sendRichMessageDraft` frames and is sent as one `sendRichMessage`; any refusal sends
    that answer the entity way and closes the gate for a while."""

    def __init__(self, bot: Bot, chat_id: int, *, reply_to: int | None = None,
                 thread_id: int | None = None, header: Chunk | None = None,
                 lang: str = "en", rich: RichGate | None = None) -> None:
        self.bot, self.chat_id, self.reply_to, self.thread_id = bot, chat_id, reply_to, thread_id
        self.header, self.lang, self.rich = header, lang, rich
        self._headers = _Headers(header, lang)
        self.draft_id = secrets.randbelow(2**31 - 2) + 1
        self._paused = _Paused()
        self._last: Chunk | None = None
        self._last_rich: str | None = None  # the rich frame shown last, if it was one
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

    async def show(self, markdown: str, reasoning: str = "") -> None:
        if not markdown.strip():
            if reasoning.strip():  # thinking: the end of the reasoning, live
                self._last = live_reasoning(reasoning, t("reasoning_live", self.lang),
                                            self.header)
                await self._draft(self._last, self.draft_id)
            return
        if await self._rich_draft(markdown, reasoning):
            return
        self._last_rich = None
        tail = frame_tail(markdown, self._headers(reasoning))
        if tail is None:
            return
        # Long answers: the draft shows the part being written; a new id per part replaces it.
        number, self._last = tail
        await self._draft(self._last, self.draft_id + number)

    def _rich_source(self, markdown: str, reasoning: str) -> str | None:
        """The rich message's Markdown, if this answer is to be one."""
        if self.rich is None or not self.rich.open() or self.header is not None:
            return None  # arena answers keep entities: their header is edited on reveal
        if not fits(markdown) or not needs_rich(markdown):
            return None
        source = rich_markdown(markdown, reasoning, t("reasoning_label", self.lang),
                               lambda text: shorten(text, REASONING_SHOWN))
        return source if fits(source) else None

    async def _rich_draft(self, markdown: str, reasoning: str) -> bool:
        """A `sendRichMessageDraft` frame, if this answer is a rich one; False: not sent."""
        source = self._rich_source(markdown, reasoning)
        if source is None or self._disabled:
            return False
        return await self._send_rich_draft(source)

    async def _send_rich_draft(self, source: str) -> bool:
        if self._paused.active():
            return True
        try:
            with frame_request():
                await self.bot.send_rich_message_draft(
                    chat_id=self.chat_id, draft_id=self.draft_id,
                    rich_message=InputRichMessage(markdown=source), can_stop=True,
                    message_thread_id=self.thread_id,
                )
            self._last_rich = source  # what a keepalive re-sends
            return True
        except TelegramRetryAfter as exc:
            self._paused.hit(exc)
            return True
        except TelegramAPIError as exc:
            assert self.rich is not None
            self.rich.failed(exc, "rich draft")
            return False

    async def keepalive(self) -> None:
        # Drafts expire after ~30 s without an update.
        if self._last_rich is not None:
            await self._send_rich_draft(self._last_rich)
            return
        await self._draft(self._last or Chunk(""), self.draft_id)

    async def finish(
        self, markdown: str, *, reasoning: str = "",
        reply_markup: InlineKeyboardMarkup | None = None, file_caption: str = "",
    ) -> list[int]:
        source = self._rich_source(markdown, reasoning)
        if source is not None:
            reply = (ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)
                     if self.reply_to else None)
            try:
                sent = await self.bot.send_rich_message(
                    chat_id=self.chat_id, rich_message=InputRichMessage(markdown=source),
                    reply_markup=reply_markup, reply_parameters=reply,
                    message_thread_id=self.thread_id,
                )
                return [sent.message_id]
            except TelegramAPIError as exc:  # this answer goes the entity way
                assert self.rich is not None
                self.rich.failed(exc, "rich message")
        plan = layout(markdown, self._headers(reasoning))
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
                 header: Chunk | None = None, lang: str = "en") -> None:
        self.bot, self.chat_id, self.state = bot, chat_id, state
        self.header = header
        self._headers = _Headers(header, lang)
        self._typed_at = -TYPING_EVERY
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

    async def show(self, markdown: str, reasoning: str = "") -> None:
        # Nothing but whitespace yet: no message (an arena header, or a model's thinking,
        # alone would be left behind as a stub if the answer never gets any text). While
        # the model thinks, "typing…" says it is at work; the reasoning shows in the end.
        if not markdown.strip():
            if reasoning.strip():
                await self._typing()
            return
        if self._paused.active():
            return
        try:
            with frame_request():
                # No more messages than a final answer keeps (the rest would go to a file).
                await self._sync(frame_parts(markdown, self._headers(reasoning)), None,
                                 final=False)
        except TelegramRetryAfter as exc:
            self._paused.hit(exc)
        except TelegramAPIError as exc:  # refused, or lost on the way: the next frame may do
            log.warning("frame refused in chat %s: %s", self.chat_id, exc.message)

    async def _typing(self) -> None:
        now = time.monotonic()
        if now - self._typed_at < TYPING_EVERY:
            return
        self._typed_at = now
        try:
            with frame_request():
                await self.bot.send_chat_action(self.chat_id, "typing",
                                                message_thread_id=self.thread_id)
        except TelegramAPIError as exc:
            log.info("no typing action in chat %s: %s", self.chat_id, exc.message)

    async def keepalive(self) -> None:
        return None

    async def finish(
        self, markdown: str, *, reasoning: str = "",
        reply_markup: InlineKeyboardMarkup | None = None, file_caption: str = "",
    ) -> list[int]:
        plan = layout(markdown, self._headers(reasoning))
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
