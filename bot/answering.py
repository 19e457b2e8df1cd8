"""One chat turn: store the user's message, stream the model's answer, store the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ChatType

from bot.settings import Settings
from bot.streaming.pacer import StreamOutcome, pump
from bot.streaming.stops import StopSignals
from bot.streaming.views import AnswerView, DraftView, EditView
from bot.texts import t
from inference.catalogue import ModelSpec
from inference.context import fit_to_context
from inference.errors import BackendError
from inference.protocol import ChatMessage
from inference.registry import ModelRegistry
from storage.models import Message
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.shared_state import SharedState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Turn:
    """Where a turn happens and who asked."""

    chat_id: int
    chat_type: str
    thread_id: int | None
    reply_to: int | None  # the user's Telegram message, for groups
    lang: str


def history_for(path: list[Message]) -> list[ChatMessage]:
    """Stored path → chat messages: failed empty answers skipped, same-role runs merged
    (after a failed answer the next user message follows the previous one)."""
    history: list[ChatMessage] = []
    for message in path:
        if message.role not in ("user", "assistant") or not message.content:
            continue
        if history and history[-1].role == message.role:
            merged = f"{history[-1].content}\n\n{message.content}"
            history[-1] = ChatMessage(message.role, merged)  # type: ignore[arg-type]
        else:
            history.append(ChatMessage(message.role, message.content))  # type: ignore[arg-type]
    return history


def build_request(spec: ModelSpec, path: list[Message]) -> list[ChatMessage]:
    messages = history_for(path)
    if spec.system_prompt:
        messages.insert(0, ChatMessage("system", spec.system_prompt))
    reserve = spec.params.max_tokens or min(1024, spec.context_window // 4)
    return fit_to_context(messages, spec.context_window, reserve)


class Answerer:
    """Runs turns. One per process; handlers receive it from the Dispatcher."""

    def __init__(self, settings: Settings, registry: ModelRegistry,
                 conversations: ConversationRepository, state: SharedState,
                 stops: StopSignals) -> None:
        self.settings = settings
        self.registry = registry
        self.conversations = conversations
        self.state = state
        self.stops = stops
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self, grace: float) -> None:
        """On shutdown: let answers being streamed finish for up to `grace` seconds."""
        if self._in_flight:
            log.info("waiting for %d answers to finish", self._in_flight)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)

    @contextlib.asynccontextmanager
    async def chat_lock(self, chat_id: int, wait: float = 60.0):  # type: ignore[no-untyped-def]
        """One generation at a time per chat (across processes); yields False if still busy."""
        key = f"gen:{chat_id}"
        ttl = 600.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        got = await self.state.claim(key, ttl)
        while not got and loop.time() < deadline:
            await asyncio.sleep(0.2)
            got = await self.state.claim(key, ttl)
        try:
            yield got
        finally:
            if got:
                await self.state.release(key)

    def _view(self, bot: Bot, turn: Turn) -> AnswerView:
        if turn.chat_type == ChatType.PRIVATE:
            return DraftView(bot, turn.chat_id, thread_id=turn.thread_id)
        return EditView(
            bot, turn.chat_id, self.state,
            edits_per_minute=self.settings.group_edits_per_minute,
            reply_to=turn.reply_to, thread_id=turn.thread_id,
        )

    async def answer(self, bot: Bot, turn: Turn, user_message: Message,
                     model_id: str | None) -> Message:
        """Stream an answer to `user_message` (already stored) and store it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._answer(bot, turn, user_message, model_id)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _answer(self, bot: Bot, turn: Turn, user_message: Message,
                      model_id: str | None) -> Message:
        spec = self.registry.spec(model_id)
        params = spec.params.as_request()
        path = await self.conversations.path_to(user_message.id)
        view = self._view(bot, turn)
        try:
            request = build_request(spec, path)
            events = self.registry.backend(spec.id).stream(request, params)
        except BackendError as exc:
            return await self._failed(bot, turn, spec, user_message, StreamOutcome(error=exc))
        if isinstance(view, DraftView):
            await view.start()
            interval = self.settings.draft_interval
            with self.stops.watch(turn.chat_id, view.draft_id) as stop:
                outcome = await pump(events, view, interval=interval, stop=stop)
        else:
            await bot.send_chat_action(turn.chat_id, "typing", message_thread_id=turn.thread_id)
            interval = self.settings.edit_interval_group
            outcome = await pump(events, view, interval=interval)
        if outcome.error is not None and not outcome.text:
            return await self._failed(bot, turn, spec, user_message, outcome)
        return await self._deliver(view, turn, spec, user_message, outcome)

    async def _deliver(self, view: AnswerView, turn: Turn, spec: ModelSpec,
                       user_message: Message, outcome: StreamOutcome) -> Message:
        text = outcome.text
        status = "complete"
        if outcome.error is not None:
            status = "cut"
            text += f"\n\n{t('answer_cut', turn.lang)}"
        elif outcome.stopped:
            status = "stopped"
            text += f"\n\n{t('answer_stopped', turn.lang)}"
        elif outcome.finish_reason == "length":
            text += f"\n\n{t('answer_length', turn.lang)}"
        ids = await view.finish(text)
        return await self.conversations.add_answer(
            user_message, self._record(spec, outcome, status), turn.chat_id, ids
        )

    async def _failed(self, bot: Bot, turn: Turn, spec: ModelSpec, user_message: Message,
                      outcome: StreamOutcome) -> Message:
        error = outcome.error
        assert error is not None
        log.warning("model %s failed: %s (%s)", spec.id, error.kind, error.detail)
        key = f"err_{error.kind}"
        kind = error.kind if key in _ERROR_KEYS else "unavailable"
        sent = await bot.send_message(
            turn.chat_id, t(f"err_{kind}", turn.lang, model=spec.title), parse_mode=None,
            message_thread_id=turn.thread_id,
        )
        return await self.conversations.add_answer(
            user_message, self._record(spec, outcome, "error"), turn.chat_id, [sent.message_id]
        )

    def _record(self, spec: ModelSpec, outcome: StreamOutcome, status: str) -> AnswerRecord:
        return AnswerRecord(
            content=outcome.text if status != "error" else "",
            model_id=spec.id,
            served_model=spec.model,
            status=status,
            error_kind=outcome.error.kind if outcome.error else None,
            system_prompt=spec.system_prompt,
            params=spec.params.as_request(),
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            ttft_ms=round(outcome.ttft * 1000) if outcome.ttft is not None else None,
            total_ms=round(outcome.total * 1000),
            finish_reason=outcome.finish_reason,
        )


_ERROR_KEYS = {
    "err_unavailable", "err_timeout", "err_rate_limited", "err_context_too_long",
    "err_bad_request", "err_stream_error",
}
