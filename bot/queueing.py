"""Questions answered in order, one stream at a time per conversation, across bot processes.

A stored question is queued (`QuestionStore`, Redis when configured); whoever holds the
conversation's lock answers the queue's entries one by one until it is empty. A question
sent while an answer is being written waits its turn, and the user is told its place. When a
process stops (or dies) with questions still queued, the next process to see the chat, or
any process's periodic sweep, picks them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message as TgMessage
from aiogram.types import ReactionTypeEmoji, ReplyParameters

from bot.addressing import topic_of
from bot.answering import Answerer, Turn
from bot.observability.logs import scoped
from bot.prefs import Preferences
from bot.streaming.delivery import frame_request
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import Message
from storage.outage import describe, unavailable
from storage.question_queue import QueueStore
from storage.repositories.questions import QuestionRepository
from storage.shared_state import LOCK_TTL

log = logging.getLogger(__name__)

# Questions that may wait per conversation, besides the one being answered.
QUEUE_LIMIT = 5
# How often every process looks for queues nobody is answering (a process died).
SWEEP_EVERY = 30.0
# A question whose conversation is busy waits this long before the user is told it is queued
# (an answer about to end, or a lock about to be freed, makes no note).
QUICK_WAIT = 1.0
# How long a queued question's process waits for the conversation's lock before leaving the
# queue to its holder (longer than a lock lives without renewal: a dead holder's expires).
TURN_WAIT = LOCK_TTL + 5.0
# An edited question's text waits this long for "Answer the edited version".
EDIT_TTL = 24 * 3600.0
QUEUED_REACTION = "👀"
EDITED_REACTION = "✍"


@dataclass(frozen=True, slots=True)
class Queued:
    """A stored question waiting for its answer, with what its turn needs as it was when it
    was asked (the model, arena mode, the language)."""

    question_id: int
    chat_id: int
    chat_type: str
    thread_id: int | None
    tg_message_id: int  # the user's Telegram message (reactions; replies in groups)
    lang: str
    model_id: str | None
    arena: bool
    user_id: int  # the asker's stored id (arena battles)
    chat_row_id: int
    # Its place in the queue: the Telegram message id it was sent as (ids grow in a chat).
    order: int
    edited: bool = False  # an edited version: it stays a sibling of the original
    vision: bool = False  # it shows images: an arena battle is between models that see them
    # The chat's /system text or persona and the asker's /settings when it was sent.
    system_prompt: str | None = None
    persona_id: str | None = None
    settings: dict[str, Any] | None = None
    # Arena models out of the asker's quota when it was accepted (never drawn for it).
    exclude: list[str] | None = None

    @classmethod
    def of(cls, message: TgMessage, question: Message, *, chat_row_id: int, lang: str,
           model_id: str | None, arena: bool, vision: bool = False,
           prefs: Preferences | None = None, tg_message_id: int | None = None,
           edited: bool = False, exclude: Sequence[str] = ()) -> Queued:
        """The entry for `question`, queued where `message` stands in its chat (by default
        also the message reacted to and replied to, `tg_message_id`)."""
        assert question.author_id is not None
        prefs = prefs or Preferences()
        return cls(question.id, message.chat.id, message.chat.type, topic_of(message),
                   tg_message_id or message.message_id, lang, model_id, arena,
                   question.author_id, chat_row_id, order=message.message_id, edited=edited,
                   vision=vision, system_prompt=prefs.system_prompt,
                   persona_id=prefs.persona.id if prefs.persona is not None else None,
                   settings=dict(prefs.settings) if prefs.settings else None,
                   exclude=list(exclude) or None)

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> Queued:
        return cls(**json.loads(raw))

    @property
    def name(self) -> str:
        return queue_name(self.chat_id, self.thread_id)

    def turn(self, registry: ModelRegistry) -> Turn:
        group = self.chat_type != ChatType.PRIVATE
        prefs = Preferences(
            system_prompt=self.system_prompt,
            persona=None if self.system_prompt else registry.persona(self.persona_id),
            settings=self.settings)
        return Turn(chat_id=self.chat_id, chat_type=self.chat_type, thread_id=self.thread_id,
                    reply_to=self.tg_message_id if group else None, lang=self.lang,
                    prefs=prefs)


def queue_name(chat_id: int, thread_id: int | None) -> str:
    return str(chat_id) if thread_id is None else f"{chat_id}:{thread_id}"


def _parse_name(name: str) -> tuple[int, int | None]:
    chat, _, thread = name.partition(":")
    return int(chat), int(thread) if thread else None


@dataclass(slots=True)
class Preloaded:
    """A question whose history the caller has just read with it (saves a query)."""

    question: Message
    path: list[Message]


class QuestionQueue:
    """One per process; handlers receive it from the Dispatcher as `queue`."""

    def __init__(self, answerer: Answerer, store: QueueStore, questions: QuestionRepository,
                 registry: ModelRegistry, *, limit: int = QUEUE_LIMIT) -> None:
        self.answerer = answerer
        self.store = store
        self.questions = questions
        self.registry = registry
        self.limit = limit
        self._bot: Bot | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Task[None]] = {}  # waiting for a lock, by queue
        answerer.released = self._released

    # --- lifecycle -------------------------------------------------------------------
    def start(self, bot: Bot) -> None:
        """On startup: resume queues left behind, and look for orphaned ones periodically."""
        self._bot = bot
        self._closing = False
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        """On shutdown: no new turns from queues (what waits stays for the next process);
        answers being written finish (`Answerer.drain`)."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        waiters = list(self._waiters.values())  # none of them is answering yet
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                for name in await self.store.names():
                    self._spawn(name)
            except Exception:
                log.exception("queue sweep failed")
            await asyncio.sleep(SWEEP_EVERY)

    def _spawn(self, name: str) -> None:
        if self._closing or self._bot is None:
            return
        task = asyncio.create_task(self._resume(self._bot, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _released(self, chat_id: int, thread_id: int | None) -> None:
        """A conversation's lock was released: if questions wait (queued while it was held
        by a regeneration, or at the last moment), answer them."""
        if self._closing or self._bot is None:
            return
        name = queue_name(chat_id, thread_id)

        async def check() -> None:
            if await self.store.waiting(name):
                await self._resume(self._bot, name)  # type: ignore[arg-type]

        task = asyncio.create_task(check())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, bot: Bot, name: str) -> None:
        chat_id, thread_id = _parse_name(name)
        async with self.answerer.chat_lock(chat_id, thread_id, wait=0, notify=False) as got:
            if got:
                await self._drain(bot, name, None)

    def _await_turn(self, bot: Bot, name: str) -> None:
        """Wait (in the background) for the lock of a conversation whose queue this process
        just added to: its holder may be another process that dies, or a lock left behind."""
        if name in self._waiters or self._closing:
            return
        task = asyncio.create_task(self._take_turn(bot, name))
        self._waiters[name] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_turn(self, bot: Bot, name: str) -> None:
        me = asyncio.current_task()
        chat_id, thread_id = _parse_name(name)
        try:
            async with self.answerer.chat_lock(chat_id, thread_id, wait=TURN_WAIT,
                                               notify=False) as got:
                if self._waiters.get(name) is me:
                    del self._waiters[name]  # from here on, not cancelled by close()
                if got:
                    await self._drain(bot, name, None)
        finally:
            if self._waiters.get(name) is me:
                del self._waiters[name]

    # --- asking ----------------------------------------------------------------------
    async def full(self, message: TgMessage, lang: str) -> bool:
        """Whether the conversation of `message` has `limit` questions waiting; if so the user
        is told, once, that this message was not kept. Asked before storing a question."""
        waiting = await self.store.waiting(queue_name(message.chat.id, topic_of(message)))
        if len(waiting) < self.limit:
            return False
        with contextlib.suppress(TelegramAPIError):
            await message.reply(t("queue_full", lang, limit=self.limit), parse_mode=None)
        return True

    async def submit(self, bot: Bot, entry: Queued, preloaded: Preloaded | None = None) -> None:
        """Queue a stored question and, if nobody is answering in its conversation, answer the
        queue now (this one first unless older ones wait); otherwise tell the user its place."""
        self._bot = bot
        place = await self.store.push(entry.name, entry.order, entry.dumps())
        async with self.answerer.chat_lock(entry.chat_id, entry.thread_id,
                                           wait=QUICK_WAIT, notify=False) as got:
            if got:
                if place > 1:
                    await self._tell_queued(bot, entry, place)
                await self._drain(bot, entry.name, preloaded)
        if not got:
            # The holder may have taken this question already (its answer is being written):
            # then there is nothing to say.
            now = await self._place(entry.name, entry.question_id)
            if now is not None:
                await self._tell_queued(bot, entry, now)
            self._await_turn(bot, entry.name)

    async def _place(self, name: str, question_id: int) -> int | None:
        """Where a question waits in the queue `name` (1: next), or None if it waits no more."""
        for place, raw in enumerate(await self.store.waiting(name), start=1):
            with contextlib.suppress(ValueError, TypeError):
                if Queued.loads(raw).question_id == question_id:
                    return place
        return None

    async def _drain(self, bot: Bot, name: str, preloaded: Preloaded | None) -> None:
        """Answer the queue's entries in order while this process holds its lock."""
        previous: int | None = None  # the question of the turn just answered
        finished = False  # that turn is over (told to the store with the next take)
        while True:
            if self._closing:
                if finished:
                    await self.store.done(name)
                return
            raw, resumed = await self.store.take(name, finished=finished)
            finished = False
            if raw is None:
                return
            entry = Queued.loads(raw)
            before, previous = previous, entry.question_id
            try:
                await self._answer(bot, entry, preloaded if before is None else None, resumed,
                                   before)
            except Exception as exc:  # this question gets a line about it, the next ones go on
                outage = unavailable(exc)
                self.answerer.metrics.error("outage" if outage else "queue")
                if outage:
                    log.warning("could not answer queued question %s: the database or Redis is "
                                "unavailable (%s)", entry.question_id, describe(exc))
                else:  # a bug
                    log.exception("could not answer queued question %s", entry.question_id)
                await self._say_failed(bot, entry, outage)
            # Not on cancellation: an entry cut off by the process ending stays current and
            # is answered by the next process.
            finished = True

    async def _answer(self, bot: Bot, entry: Queued, preloaded: Preloaded | None,
                      resumed: bool, previous: int | None) -> None:
        """One turn. A question stored and taken at once is answered with the history read
        when storing it; one that waited is first put after the answers before it."""
        own = preloaded is not None and preloaded.question.id == entry.question_id
        # Logged with its chat; with the update being handled only if it is that update's.
        context = {"chat_id": entry.chat_id, "model": None} | ({} if own else {"update_id": None})
        with scoped(**context):
            await self._answer_entry(bot, entry, preloaded if own else None, resumed, previous)

    async def _answer_entry(self, bot: Bot, entry: Queued, preloaded: Preloaded | None,
                            resumed: bool, previous: int | None) -> None:
        if preloaded is not None:
            question, path = preloaded.question, preloaded.path
        else:
            if resumed and await self.questions.has_answer(entry.question_id):
                return  # answered just before the process that took it ended
            found = await self.questions.attach(entry.question_id, previous,
                                                keep_parent=entry.edited)
            if found is None:
                return  # deleted, or the conversation was closed with /new
            question, path = found[-1], found
        turn = entry.turn(self.registry)
        pair = (self.registry.arena_pair(self.answerer.rng, vision=entry.vision,
                                         exclude=entry.exclude or ())
                if entry.arena else None)
        if pair is not None:
            await self.answerer.battle(bot, turn, question, asker_id=entry.user_id,
                                       chat_row_id=entry.chat_row_id, pair=pair, path=path)
        else:
            await self.answerer.answer(bot, turn, question, entry.model_id, path=path)

    @staticmethod
    async def _say_failed(bot: Bot, entry: Queued, outage: bool = False) -> None:
        text = t("outage_unavailable" if outage else "err_internal", entry.lang)
        try:
            await bot.send_message(entry.chat_id, text, parse_mode=None,
                                   message_thread_id=entry.thread_id)
        except Exception:
            log.warning("could not report the failure to chat %s", entry.chat_id)

    async def _tell_queued(self, bot: Bot, entry: Queued, place: int) -> None:
        """👀 on the question; in private chats also a line with its place (groups get the
        line only if the reaction is not allowed there)."""
        reacted = await react(bot, entry.chat_id, entry.tg_message_id, QUEUED_REACTION)
        if reacted and entry.chat_type != ChatType.PRIVATE:
            return
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                entry.chat_id, t("queue_waiting", entry.lang, place=place), parse_mode=None,
                message_thread_id=entry.thread_id,
                reply_parameters=ReplyParameters(message_id=entry.tg_message_id,
                                                 allow_sending_without_reply=True))

    async def depth(self) -> int:
        """Questions waiting in every conversation's queue (shared by all processes)."""
        return await self.store.depth()

    # --- /new and edits ----------------------------------------------------------------
    async def clear(self, chat_id: int, thread_id: int | None) -> int:
        """Drop what waits in a conversation (/new); returns how many questions that was."""
        return len(await self.store.clear(queue_name(chat_id, thread_id)))

    async def is_waiting(self, chat_id: int, thread_id: int | None, question_id: int) -> bool:
        return await self._place(queue_name(chat_id, thread_id), question_id) is not None

    async def keep_edit(self, question_id: int, text: str) -> None:
        await self.store.stash(f"edit:{question_id}", text, EDIT_TTL)

    async def take_edit(self, question_id: int) -> str | None:
        return await self.store.unstash(f"edit:{question_id}")


async def react(bot: Bot, chat_id: int, message_id: int, emoji: str) -> bool:
    """Put a reaction on a message (best effort); False if Telegram would not."""
    try:
        with frame_request():
            await bot.set_message_reaction(chat_id, message_id,
                                           reaction=[ReactionTypeEmoji(emoji=emoji)])
    except TelegramAPIError as exc:
        log.info("no reaction on %s/%s: %s", chat_id, message_id, exc.message)
        return False
    return True


async def enqueue_or_answer(bot: Bot, queue: QuestionQueue, message: TgMessage,
                            question: Message, path: list[Message], *, chat_row_id: int,
                            lang: str, model_id: str | None, arena: bool,
                            vision: bool = False, prefs: Preferences | None = None,
                            exclude: Sequence[str] = ()) -> None:
    """The entry point for a question already stored from `message` (text, photo, voice…;
    an album: its first message), with `path` its history as read when storing it: answered
    now, or queued behind the answers before it in its conversation. `vision`: it shows
    images (an arena battle is then between models that see them). `model_id`, `arena`,
    `lang` and `prefs` are as they are now: a question that waits is answered with them.
    `exclude`: arena models out of the asker's quota."""
    entry = Queued.of(message, question, chat_row_id=chat_row_id, lang=lang,
                      model_id=model_id, arena=arena, vision=vision, prefs=prefs,
                      exclude=exclude)
    await queue.submit(bot, entry, Preloaded(question, path))
