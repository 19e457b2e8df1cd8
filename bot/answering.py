"""Turns: stream a model's answer to a stored user message, store it, deliver it with buttons."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup, MessageEntity

from bot.cleaning import clean_text
from bot.formatting import Chunk, utf16_len
from bot.keyboards.answers import answer_keyboard, retry_keyboard
from bot.keyboards.arena import battle_keyboard
from bot.media import ImageStore, images_of, merge_content, user_content
from bot.observability.logs import set_chat, set_model
from bot.observability.metrics import Metrics
from bot.prefs import Generation, Preferences, generation_for
from bot.settings import Settings
from bot.streaming.delivery import DeliveryFailed, frame_request, patient_delivery
from bot.streaming.pacer import StreamOutcome, pump
from bot.streaming.rich import RichGate
from bot.streaming.stops import StopSignals
from bot.streaming.views import AnswerView, DraftView, EditView
from bot.texts import t
from inference.catalogue import ModelSpec
from inference.context import Fitted, fit_to_context
from inference.errors import BackendError, ModelUnavailable
from inference.protocol import ChatBackend, ChatMessage
from inference.registry import ModelRegistry
from storage.models import UNSHOWN_STATUSES, Battle, Message
from storage.outage import describe, ride_out, unavailable
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.privacy import QuestionGone
from storage.shared_state import SharedState, held_lock

log = logging.getLogger(__name__)

# How long a written answer waits for the database to take it (a restart takes seconds);
# after that it is shown without buttons, marked as not saved.
STORE_PATIENCE = 20.0
# How long the conversation of an answer that could not be saved waits to be settled (put
# back to before its question) once the database is back.
SETTLE_PATIENCE = 600.0
# Once a shutdown's grace is over, the answers it interrupts have this long (seconds) for their
# final sends; a turn still busy after that (and a moment more) is cancelled.
FINAL_SENDS = 10.0
FINAL_MARGIN = 2.0

ERROR_KINDS = {"unavailable", "timeout", "rate_limited", "context_too_long", "bad_request",
               "stream_error", "model_not_served"}


@dataclass(frozen=True, slots=True)
class Turn:
    """Where a turn happens and who asked."""

    chat_id: int
    chat_type: str
    thread_id: int | None
    reply_to: int | None  # the user's Telegram message, for groups
    lang: str
    # The chat's prompt or persona and the asker's /settings (None: the models' defaults).
    prefs: Preferences | None = None


def history_for(path: list[Message], images: Mapping[str, str] | None = None,
                ) -> list[ChatMessage]:
    """Stored path → chat messages: answers the user never saw skipped, same-role runs merged
    (a question sent while the previous one was being answered goes with the next one).
    Questions with images: `image_url` parts where `images` (data URLs by file_unique_id,
    for a vision model) has them, "[image]" markers otherwise (see `bot.media`)."""
    history: list[ChatMessage] = []
    for message in path:
        attachments = getattr(message, "attachments", None) if message.role == "user" else None
        if (message.role not in ("user", "assistant")
                or not (message.content or images_of(attachments))
                or message.status in UNSHOWN_STATUSES):
            continue
        content = user_content(message.content, attachments, images)
        if history and history[-1].role == message.role:
            merged = merge_content(history[-1].content, content)
            history[-1] = ChatMessage(message.role, merged)  # type: ignore[arg-type]
        else:
            history.append(ChatMessage(message.role, content))  # type: ignore[arg-type]
    return history


async def build_request(spec: ModelSpec, path: list[Message],
                        backend: ChatBackend | None = None,
                        images: Mapping[str, str] | None = None,
                        generation: Generation | None = None) -> Fitted:
    """The messages a model is sent for `path`, fitted to its context window: the catalogue's
    `context_window`, or the server's own limit where it reports a smaller one (vLLM), counted
    with the server's tokenizer, tiktoken or an estimate (see `inference.tokens`). `images`:
    a vision model's images (see `history_for`). `generation`: the system prompt and parameters
    in force (default: the model's own)."""
    generation = generation or generation_for(spec, None)
    messages = history_for(path, images if spec.vision else None)
    if generation.system_prompt:
        messages.insert(0, ChatMessage("system", generation.system_prompt))
    window = spec.context_window
    served_limit = getattr(backend, "max_model_len", None)
    if isinstance(served_limit, int) and served_limit < window:
        window = served_limit
    reserve = min(int(generation.params.get("max_tokens") or 1024), window // 4)
    return await fit_to_context(messages, window, reserve, getattr(backend, "counter", None))


def answer_note(status: str, finish_reason: str | None, lang: str) -> str | None:
    """A note on how an answer ended, if it did not end normally."""
    note = {"cut": "answer_cut", "stopped": "answer_stopped",
            "interrupted": "answer_interrupted"}.get(status)
    if note is None and finish_reason == "length":
        note = "answer_length"
    return t(note, lang) if note else None


def display_text(content: str, status: str, finish_reason: str | None, lang: str,
                 *, context_note: bool = False) -> str:
    """What the user sees for a stored answer: its text plus a note on how it ended (and,
    the first time older messages were left out of a conversation, a note saying so)."""
    notes = [n for n in (answer_note(status, finish_reason, lang),
                         t("context_trimmed", lang) if context_note else None) if n]
    return "\n\n".join([content, *notes])


def file_caption(status: str, finish_reason: str | None, lang: str) -> str:
    """The caption of the file holding the rest of a very long answer (with the note on how
    it ended, which is at the very end of the file)."""
    note = answer_note(status, finish_reason, lang)
    return t("answer_in_file", lang) + (f"\n{note}" if note else "")


def arena_header(side: str, lang: str, model_title: str | None = None) -> Chunk:
    """"Model A" (anonymous) or "Model A: Alpha" (revealed), in bold."""
    text = (t("arena_revealed", lang, side=side, model=model_title) if model_title
            else t("arena_side", lang, side=side))
    return Chunk(text, [MessageEntity(type="bold", offset=0, length=utf16_len(text))])


class Answerer:
    """Runs turns. One per process; handlers receive it from the Dispatcher."""

    def __init__(self, settings: Settings, registry: ModelRegistry,
                 conversations: ConversationRepository, feedback: FeedbackRepository,
                 state: SharedState, stops: StopSignals, rng: random.Random | None = None,
                 *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.registry = registry
        self.conversations = conversations
        self.feedback = feedback
        self.state = state
        self.stops = stops
        self.rng = rng or random.Random()
        self.images = ImageStore()  # images fetched again for vision models' requests
        self.rich = RichGate(settings.rich_messages == "auto")  # per process, see its doc
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._turns: Counter[asyncio.Task[object]] = Counter()  # the tasks running turns
        self._streams: set[asyncio.Event] = set()  # the stop events of answers streaming
        # Set by `drain` once the grace is over: streams still running are interrupted, and
        # final sends must be done by then (loop time).
        self._final_deadline: float | None = None
        self._settling: set[asyncio.Task[None]] = set()  # see `_abandon_later`
        # Told (chat id, topic) after a conversation's lock is released (the question queue).
        self.released: Callable[[int, int | None], None] | None = None

    async def drain(self, grace: float, final: float = FINAL_SENDS,
                    margin: float = FINAL_MARGIN) -> None:
        """On shutdown (any caller: polling or webhook), once no new turns start: let answers
        being written finish for up to `grace` seconds. Then every answer still streaming is
        interrupted: its model call is cancelled and the text so far is delivered as its final
        message with a note and 🔄 (or the note alone), stored with status "interrupted".
        Their final sends get `final` seconds; a turn still busy `margin` seconds after that
        is cancelled, so this returns within `grace + final + 2 * margin` seconds whatever
        Telegram (or anything else) does. Conversations still waiting to be settled
        after a database outage (`_abandon_later`) are left to the next process."""
        try:
            await self._drain_turns(grace, final, margin)
        finally:  # the next process's turns settle those conversations
            for task in self._settling:
                task.cancel()
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _drain_turns(self, grace: float, final: float, margin: float) -> None:
        """The turns' part of `drain`."""
        if not self._in_flight:
            return
        log.info("waiting for %d answers to finish", self._in_flight)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        if not self._in_flight:
            return
        log.warning("interrupting %d answers still being written", self._in_flight)
        self._final_deadline = asyncio.get_running_loop().time() + final
        for stop in list(self._streams):
            stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), final + margin)
        if not self._in_flight:
            return
        stuck = list(self._turns)
        log.warning("cancelling %d turns that did not end in time", len(stuck))
        for task in stuck:
            task.cancel()
        await asyncio.wait(stuck, timeout=margin)

    @property
    def interrupting(self) -> bool:
        """Whether a shutdown is interrupting the answers being written."""
        return self._final_deadline is not None

    @contextlib.asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight += 1
        self._turns[task] += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._turns[task] -= 1
            if not self._turns[task]:
                del self._turns[task]
            if not self._in_flight:
                self._idle.set()

    @contextlib.contextmanager
    def _stop_event(self, turn: Turn, view: AnswerView,
                    asker_id: int | None = None) -> Iterator[asyncio.Event]:
        """The event that ends a stream early: a draft's stop button, the asker's "forget me",
        or a shutdown (set at once if one is already interrupting answers)."""
        with contextlib.ExitStack() as stack:
            if isinstance(view, DraftView):
                stop = stack.enter_context(self.stops.watch(turn.chat_id, view.draft_id))
            else:
                stop = asyncio.Event()
            stack.enter_context(self.stops.watch_asker(asker_id, stop))
            self._streams.add(stop)
            stack.callback(self._streams.discard, stop)
            if self.interrupting:
                stop.set()
            yield stop

    @contextlib.asynccontextmanager
    async def _final_sends(self, *, patient: bool = True) -> AsyncIterator[None]:
        """Around a turn's final sends: `patient` ones wait out 429s (`patient_delivery`);
        during a shutdown all must be over by its deadline (a TimeoutError past it)."""
        if self._final_deadline is None:
            with patient_delivery() if patient else contextlib.nullcontext():
                yield
            return
        left = max(self._final_deadline - asyncio.get_running_loop().time(), 0.0)
        async with asyncio.timeout_at(self._final_deadline):
            with patient_delivery(left, network_retries=1):
                yield

    @contextlib.asynccontextmanager
    async def chat_lock(self, chat_id: int, thread_id: int | None = None,
                        wait: float = 60.0, *, notify: bool = True) -> AsyncIterator[bool]:
        """One generation at a time per conversation: a chat, or one topic of it (across
        processes); yields False if still busy after `wait` seconds. The lock has an owner
        and a short expiry renewed while held; losing Redis never fails the turn. `notify`:
        tell `released` when it is let go (the question queue, which need not hear of its own
        locks: it lets one go only with nothing left to answer)."""
        key = f"gen:{chat_id}" if thread_id is None else f"gen:{chat_id}:{thread_id}"
        got = False
        try:
            async with held_lock(self.state, key, wait=wait) as got:
                yield got
        finally:
            if got and notify and self.released is not None:
                self.released(chat_id, thread_id)

    def _view(self, bot: Bot, turn: Turn, header: Chunk | None) -> AnswerView:
        if turn.chat_type == ChatType.PRIVATE:
            return DraftView(bot, turn.chat_id, thread_id=turn.thread_id, header=header,
                             lang=turn.lang, rich=self.rich)
        return EditView(
            bot, turn.chat_id, self.state,
            edits_per_minute=self.settings.group_edits_per_minute,
            reply_to=turn.reply_to, thread_id=turn.thread_id, header=header, lang=turn.lang,
        )

    async def _stream_once(self, bot: Bot, turn: Turn, spec: ModelSpec, user_message: Message,
                           header: Chunk | None, path: list[Message] | None = None,
                           ) -> tuple[AnswerView, StreamOutcome]:
        """Stream one model's answer to `user_message`, whose history is `path` (read here
        if not given)."""
        set_chat(turn.chat_id)  # log context (a queued turn may run outside its update)
        set_model(spec.id)
        view = self._view(bot, turn, header)
        with self._stop_event(turn, view, user_message.author_id) as stop:
            if path is None:
                path = await self.conversations.path_to(user_message.id)
            try:
                backend = self.registry.backend(spec.id)
                images = await self.images.for_path(bot, path) if spec.vision else None
                generation = generation_for(spec, turn.prefs)
                fitted = await build_request(spec, path, backend, images, generation)
                events = backend.stream(fitted.messages, generation.params,
                                        key=str(turn.chat_id))
            except BackendError as exc:
                self.metrics.error(exc.kind, spec.id)
                return view, StreamOutcome(error=exc, started=time.monotonic())
            # The model request goes out first; a placeholder (or "typing…") only if its
            # first text is slow to come (`pump`).
            with self.metrics.streaming(spec.id):
                if isinstance(view, DraftView):
                    outcome = await pump(events, view, interval=self.settings.draft_interval,
                                         stop=stop, opening=view.start)
                else:
                    outcome = await pump(events, view,
                                         interval=self.settings.edit_interval_group,
                                         stop=stop, opening=lambda: self._typing(bot, turn))
        if outcome.error is not None:
            self.metrics.error(outcome.error.kind, spec.id)
        if outcome.shown is not None:
            self.metrics.shown(spec.id, outcome.shown)
        # A stop during a shutdown is the shutdown's (a press at that moment is the same).
        outcome.interrupted = outcome.stopped and self.interrupting
        outcome.context_dropped = fitted.dropped
        # Said once per conversation: the first answer that had to leave messages out.
        outcome.context_note = bool(fitted.dropped) and not any(
            m.context_dropped for m in path if m.role == "assistant")
        return view, outcome

    @staticmethod
    async def _typing(bot: Bot, turn: Turn) -> None:
        with contextlib.suppress(TelegramAPIError), frame_request():
            await bot.send_chat_action(turn.chat_id, "typing", message_thread_id=turn.thread_id)

    async def _stream(self, bot: Bot, turn: Turn, spec: ModelSpec, user_message: Message,
                      path: list[Message] | None = None,
                      ) -> tuple[ModelSpec, AnswerView, StreamOutcome]:
        """Stream from `spec`, or from its fallback models in turn when it is unavailable
        before any text (with a one-line note to the user). Returns the model that answered."""
        chain = [spec, *(m for f in spec.fallback
                         if (m := self.registry.get(f)) is not None and m.enabled)]
        for current, following in zip(chain, [*chain[1:], None], strict=True):
            view, outcome = await self._stream_once(bot, turn, current, user_message, None, path)
            unavailable = (isinstance(outcome.error, ModelUnavailable)
                           and not outcome.text.strip())
            if not unavailable or following is None:
                return current, view, outcome
            log.warning("model %s unavailable (%s); falling back to %s", current.id,
                        outcome.error, following.id)
            await self._say(bot, turn, t("fallback_note", turn.lang, model=current.title,
                                         fallback=following.title))
        raise AssertionError("unreachable")

    async def answer(self, bot: Bot, turn: Turn, user_message: Message, model_id: str | None,
                     *, origin: str = "original", head: str = "follow",
                     path: list[Message] | None = None) -> Message | None:
        """Stream an answer to `user_message` (already stored; `path`: its history, if it was
        read with it), store it, deliver it, and settle the conversation
        (`ConversationRepository.conclude` with `head`). None: the database would not take
        the answer (`_store`); it was shown without buttons."""
        async with self._tracked(), self._settled(user_message, head):
            spec, view, outcome = await self._stream(
                bot, turn, self.registry.spec(model_id), user_message, path
            )
            try:
                if not outcome.text.strip():
                    return await self._unanswered(bot, turn, spec, user_message, outcome,
                                                  origin, head)
                record = self._record(spec, outcome, turn.prefs)
                stored = await self._store(user_message, record, origin)
            except QuestionGone:
                await self._forgotten(turn, view, outcome)
                return None
            if stored is None:
                await self._show_unsaved(bot, turn, view, user_message, record, head)
                return None
            await self._deliver(bot, turn, view, stored, answer_keyboard(stored.id), head,
                                context_note=outcome.context_note, stream=outcome)
            return stored

    async def _forgotten(self, turn: Turn, view: AnswerView, outcome: StreamOutcome) -> None:
        """The asker was forgotten ("forget me") while the answer was written: it ends as
        stopped, shown without buttons (there is nothing stored to judge), and is not stored."""
        log.info("an answer in chat %s was not stored: its question was forgotten meanwhile",
                 turn.chat_id)
        if not outcome.text.strip():
            return
        try:
            async with self._final_sends(patient=False):
                await view.finish(display_text(outcome.text, "stopped", None, turn.lang),
                                  reply_markup=None,
                                  file_caption=file_caption("stopped", None, turn.lang))
        except (DeliveryFailed, TimeoutError) as exc:
            log.warning("the end of a forgotten answer in chat %s was not shown: %s",
                        turn.chat_id, exc)

    async def _store(self, user_message: Message, record: AnswerRecord,
                     origin: str) -> Message | None:
        """Store a written answer, waiting out a database outage for up to STORE_PATIENCE
        seconds (one insert: safe to repeat); None if the database stayed unavailable."""
        try:
            return await ride_out(
                lambda: self.conversations.store_answer(user_message, record, origin=origin),
                what=f"storing the answer to message {user_message.id}",
                patience=STORE_PATIENCE)
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.error("the answer to message %s was not stored: the database is unavailable "
                      "(%s)", user_message.id, describe(exc))
            return None

    async def _conclude(self, stored: Message, **how: Any) -> None:
        """`ConversationRepository.conclude`, waiting out an outage like `_store`. If the
        database stays away the answer is still stored and shown with its buttons; only its
        delivery records and the conversation's move onto it are missing (logged)."""
        try:
            await ride_out(lambda: self.conversations.conclude(stored, **how),
                           what=f"settling answer {stored.id}", patience=STORE_PATIENCE)
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.error("answer %s stored but not settled: the database is unavailable (%s)",
                      stored.id, describe(exc))

    async def _show_unsaved(self, bot: Bot, turn: Turn, view: AnswerView,
                            user_message: Message, record: AnswerRecord, head: str) -> None:
        """An answer the database would not take: shown, with a note saying so and no buttons
        (a vote or a regeneration would refer to nothing stored)."""
        text = "\n\n".join([display_text(record.content, record.status, record.finish_reason,
                                         turn.lang), t("outage_answer_not_saved", turn.lang)])
        try:
            async with self._final_sends():
                await view.finish(text, reasoning=record.reasoning or "", reply_markup=None,
                                  file_caption=file_caption(record.status,
                                                            record.finish_reason, turn.lang))
        except (DeliveryFailed, TimeoutError) as exc:  # TimeoutError: a shutdown's deadline
            log.warning("unsaved answer to message %s not delivered to chat %s: %s",
                        user_message.id, turn.chat_id, exc)
        # The question stays unanswered: the conversation goes back to before it (as in
        # `_settled`), if the database is there again to hear it.
        if head != "follow":
            return
        try:
            await self.conversations.abandon(user_message)
        except Exception as exc:
            if not unavailable(exc):
                raise
            task = asyncio.create_task(self._abandon_later(user_message))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _abandon_later(self, question: Message) -> None:
        """Put the conversation back to before `question` once the database is back (a
        question asked meanwhile, stored under it, is moved beside it then)."""
        try:
            await ride_out(lambda: self.conversations.abandon(question),
                           what=f"settling the conversation of message {question.id}",
                           patience=SETTLE_PATIENCE, max_delay=1.0)
        except Exception:
            log.exception("the conversation of message %s was not settled", question.id)

    @contextlib.asynccontextmanager
    async def _settled(self, question: Message, head: str) -> AsyncIterator[None]:
        """If a turn breaks off with an unexpected error, the question it was answering does
        not stay the conversation's tip (the next question would be glued onto it)."""
        try:
            yield
        except Exception:
            if head == "follow":
                try:
                    await self.conversations.abandon(question)
                except Exception:
                    log.exception("could not settle the conversation of message %s",
                                  question.id)
            raise

    async def _deliver(self, bot: Bot, turn: Turn, view: AnswerView, stored: Message,
                       markup: InlineKeyboardMarkup | None, head: str,
                       *, context_note: bool = False,
                       stream: StreamOutcome | None = None) -> bool:
        """The final delivery, with patience (`patient_delivery`). If Telegram does not take
        it all, the answer is marked undelivered (never the head, never history or data) and
        the user gets a line with 🔄. The recorded deliveries are what really got through.
        `stream`: how the answer was streamed (if no frame showed its text, this delivery
        is its first visible text: `chatmux_time_to_first_visible_seconds`)."""
        text = display_text(stored.content, stored.status, stored.finish_reason, turn.lang,
                            context_note=context_note)
        caption = file_caption(stored.status, stored.finish_reason, turn.lang)
        try:
            async with self._final_sends():
                ids = await view.finish(text, reasoning=stored.reasoning or "",
                                        reply_markup=markup, file_caption=caption)
        except TimeoutError:  # a shutdown's deadline: what got through is not known
            self.metrics.error("undelivered")
            log.warning("answer %s not delivered to chat %s before shutdown", stored.id,
                        turn.chat_id)
            await self.conversations.conclude(stored, head=head, status="undelivered")
            return False
        except DeliveryFailed as exc:
            self.metrics.error("undelivered")
            log.warning("answer %s not delivered to chat %s: %s", stored.id, turn.chat_id, exc)
            await self._conclude(stored, head=head, status="undelivered",
                                 delivered=(turn.chat_id, exc.delivered))
            await self._notice(bot, turn, stored, t("err_undelivered", turn.lang))
            return False
        except Exception:  # a bug: whatever the user saw, this answer is not known delivered
            await self.conversations.conclude(stored, head=head, status="undelivered")
            raise
        if stream is not None and stream.shown is None and stored.model_id:
            self.metrics.shown(stored.model_id, time.monotonic() - stream.started)
        await self._conclude(stored, head=head, delivered=(turn.chat_id, ids))
        return True

    async def _notice(self, bot: Bot, turn: Turn, stored: Message, text: str) -> None:
        """A line about `stored` with 🔄 under it (best effort: Telegram may refuse it too)."""
        try:
            async with self._final_sends():
                sent = await bot.send_message(
                    turn.chat_id, text, parse_mode=None, message_thread_id=turn.thread_id,
                    reply_markup=retry_keyboard(stored.id),
                )
        except TimeoutError:
            log.warning("could not tell chat %s about answer %s before shutdown", turn.chat_id,
                        stored.id)
            return
        except TelegramAPIError as exc:
            log.warning("could not tell chat %s about answer %s: %s", turn.chat_id, stored.id,
                        exc.message)
            return
        await self.conversations.add_deliveries(stored.id, turn.chat_id, [sent.message_id])

    async def _unanswered(self, bot: Bot, turn: Turn, spec: ModelSpec, user_message: Message,
                          outcome: StreamOutcome, origin: str, head: str) -> Message | None:
        """No text reached the user (the model failed, answered nothing, or was stopped at
        once): store that, leave the conversation where it was, say so with 🔄 (without it
        if the database would not take the record)."""
        stored = await self._store(user_message, self._record(spec, outcome, turn.prefs),
                                   origin)
        if stored is not None:
            await self._conclude(stored, head=head)
        if outcome.error is not None:
            error = outcome.error
            log.warning("model %s failed: %s (%s)", spec.id, error.kind, error.detail)
            kind = error.kind if error.kind in ERROR_KINDS else "unavailable"
            text = t(f"err_{kind}", turn.lang, model=spec.title)
        elif outcome.stopped:
            text = t("answer_interrupted" if outcome.interrupted else "answer_stopped",
                     turn.lang)
        else:
            log.warning("model %s gave an empty answer (finish reason %s)", spec.id,
                        outcome.finish_reason)
            text = t("err_empty", turn.lang, model=spec.title)
        if stored is None:
            await self._say(bot, turn, text)
        else:
            await self._notice(bot, turn, stored, text)
        return stored

    async def battle(self, bot: Bot, turn: Turn, user_message: Message, *, asker_id: int,
                     chat_row_id: int, pair: tuple[ModelSpec, ModelSpec],
                     path: list[Message] | None = None) -> Battle | None:
        """Two anonymous answers, A then B, with the vote buttons under B. A side that shows
        no text makes it no battle: the other side answers as a normal turn. A side Telegram
        would not take ends it too."""
        async with self._tracked(), self._settled(user_message, "follow"):
            try:
                return await self._battle(bot, turn, user_message, asker_id=asker_id,
                                          chat_row_id=chat_row_id, pair=pair, path=path)
            except QuestionGone:  # the asker was forgotten meanwhile: nothing more is stored
                log.info("a battle in chat %s ended: its question was forgotten meanwhile",
                         turn.chat_id)
                return None

    async def _battle(self, bot: Bot, turn: Turn, user_message: Message, *, asker_id: int,
                      chat_row_id: int, pair: tuple[ModelSpec, ModelSpec],
                      path: list[Message] | None = None) -> Battle | None:
        """`battle`'s turn."""
        spec_a, spec_b = pair
        view_a, outcome_a = await self._stream_once(bot, turn, spec_a, user_message,
                                                    arena_header("A", turn.lang), path)
        if outcome_a.interrupted:  # B is not asked: it ends at once, visibly too
            await self._interrupted_side(bot, turn, user_message, spec_a, view_a,
                                         outcome_a, "A", "follow")
            await self._interrupted_side(bot, turn, user_message, spec_b, None,
                                         StreamOutcome(stopped=True, interrupted=True),
                                         "B", "keep")
            return None
        if not outcome_a.text.strip():
            await self._say(bot, turn, t("arena_side_failed", turn.lang, side="A"))
            await self.answer(bot, turn, user_message, spec_b.id, path=path)
            return None
        record_a = self._record(spec_a, outcome_a, turn.prefs)
        answer_a = await self._store(user_message, record_a, "arena")
        if answer_a is None:
            await self._show_unsaved(bot, turn, view_a, user_message, record_a, "follow")
            return None
        if not await self._deliver(bot, turn, view_a, answer_a, None, "follow",
                                   context_note=outcome_a.context_note, stream=outcome_a):
            return None

        view_b, outcome_b = await self._stream_once(bot, turn, spec_b, user_message,
                                                    arena_header("B", turn.lang), path)
        if outcome_b.interrupted:
            await self._interrupted_side(bot, turn, user_message, spec_b, view_b,
                                         outcome_b, "B", "keep")
            await self._no_battle(bot, turn, answer_a)
            return None
        if not outcome_b.text.strip():
            await self._say(bot, turn, t("arena_side_failed", turn.lang, side="B"))
            await self._no_battle(bot, turn, answer_a)
            return None
        record_b = self._record(spec_b, outcome_b, turn.prefs)
        answer_b = await self._store(user_message, record_b, "arena")
        if answer_b is None:  # A stays without buttons: its deliveries are not readable
            await self._show_unsaved(bot, turn, view_b, user_message, record_b, "keep")
            return None
        battle = await ride_out(
            lambda: self.feedback.create_battle(
                chat_row_id=chat_row_id, user_id=asker_id, prompt=user_message,
                answer_a=answer_a, answer_b=answer_b),
            what=f"storing the battle over message {user_message.id}",
            patience=STORE_PATIENCE)
        if not await self._deliver(bot, turn, view_b, answer_b,  # noted under A already
                                   battle_keyboard(battle.id, turn.lang), "keep",
                                   stream=outcome_b):
            await self.feedback.delete_battle(battle.id)
            await self._no_battle(bot, turn, answer_a)
            return None
        return battle

    async def _interrupted_side(self, bot: Bot, turn: Turn, question: Message, spec: ModelSpec,
                                view: AnswerView | None, outcome: StreamOutcome, side: str,
                                head: str) -> Message:
        """An arena side cut off by a shutdown makes no battle: it ends as a normal answer
        does (its text so far with the note, 👍 👎 🔄 under it), or as the note alone with 🔄
        (no text yet, or not asked: `view` None)."""
        stored = await self.conversations.store_answer(
            question, self._record(spec, outcome, turn.prefs), origin="arena")
        if view is not None and outcome.text.strip():
            await self._deliver(bot, turn, view, stored, answer_keyboard(stored.id), head,
                                context_note=outcome.context_note)
            return stored
        await self.conversations.conclude(stored, head=head)
        note = f"{t('arena_side', turn.lang, side=side)}\n{t('answer_interrupted', turn.lang)}"
        await self._notice(bot, turn, stored, note)
        return stored

    async def _no_battle(self, bot: Bot, turn: Turn, answer_a: Message) -> None:
        """Answer A stands alone: it gets the buttons of a normal answer."""
        parts = await self.conversations.deliveries(answer_a.id)
        if not parts:
            return
        try:
            async with self._final_sends(patient=False):
                await bot.edit_message_reply_markup(
                    chat_id=turn.chat_id, message_id=parts[-1].tg_message_id,
                    reply_markup=answer_keyboard(answer_a.id),
                )
        except TimeoutError:
            log.warning("no buttons for answer %s before shutdown", answer_a.id)
        except TelegramAPIError as exc:
            log.warning("no buttons for answer %s: %s", answer_a.id, exc.message)

    async def _say(self, bot: Bot, turn: Turn, text: str) -> None:
        """A one-line note (best effort)."""
        try:
            async with self._final_sends(patient=False):
                await bot.send_message(turn.chat_id, text, parse_mode=None,
                                       message_thread_id=turn.thread_id)
        except TimeoutError:
            log.warning("could not tell chat %s before shutdown", turn.chat_id)
        except TelegramAPIError as exc:
            log.warning("could not tell chat %s: %s", turn.chat_id, exc.message)

    def _record(self, spec: ModelSpec, outcome: StreamOutcome,
                prefs: Preferences | None = None) -> AnswerRecord:
        """What is stored of an answer (counted in the metrics as it is: once per answer)."""
        has_text = bool(outcome.text.strip())
        if outcome.error is not None:
            status = "cut" if has_text else "error"
        elif outcome.stopped:
            status = "interrupted" if outcome.interrupted else "stopped"
        else:
            status = "complete" if has_text else "empty"
        self.metrics.answer(spec.id, status)
        if has_text and outcome.ttft is not None:
            self.metrics.speed(spec.id, outcome.usage.completion_tokens,
                               outcome.text + outcome.reasoning, outcome.total - outcome.ttft)
        # The finish reason is the server's word too: cleaned, and cut to its column.
        finish_reason = clean_text(outcome.finish_reason)[:32] if outcome.finish_reason else None
        generation = generation_for(spec, prefs)
        return AnswerRecord(
            content=outcome.text,
            reasoning=outcome.reasoning or None,  # apart: never history, never exported
            model_id=spec.id,
            served_model=spec.model,
            status=status,
            error_kind=outcome.error.kind if outcome.error else None,
            system_prompt=generation.system_prompt,
            params=generation.params,
            persona_id=generation.persona_id,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            ttft_ms=round(outcome.ttft * 1000) if outcome.ttft is not None else None,
            total_ms=round(outcome.total * 1000),
            finish_reason=finish_reason,
            decoding=outcome.decoding.as_dict() if outcome.decoding else None,
            context_dropped=outcome.context_dropped,
        )
