"""Buttons under answers: 👍/👎 votes, 🔄 regenerate, 🔀 regenerate with another model, ✏️ edit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)
from aiogram.utils.formatting import Text, TextMention

from bot.addressing import NOT_TEXT, topic_of
from bot.answering import Answerer, Turn
from bot.cleaning import clean_text
from bot.filters import Inline
from bot.handlers.callbacks import pressed_answer, replace_markup
from bot.keyboards.answers import (
    VOTES,
    AnswerAction,
    RegenWith,
    answer_keyboard,
    regen_models_keyboard,
)
from bot.limits import Limits
from bot.middlewares.edit_mode import KEEPS_EDIT_MODE
from bot.observability.metrics import Metrics
from bot.prefs import Preferences
from bot.texts import t
from bot.visible import is_blank
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.conversations import ConversationRepository
from storage.repositories.feedback import FeedbackRepository, StoredAnswer
from storage.repositories.users import ChatPrefs
from storage.shared_state import SharedState

# Identical presses closer together than this are one tap (double taps, client retries).
TAP_WINDOW = 1.5
# Keyboard count updates are coalesced over this window (bursts of votes in groups).
REFRESH_WINDOW = 0.3


# ✏️ waits this long (seconds) for the improved answer; later messages are handled as usual.
EDIT_TTL = 600.0


class EditingAnswer(StatesGroup):
    waiting = State()


class EditReply(Filter):
    """The message is the improved answer the user was asked for after pressing ✏️: while edit
    mode lasts, in the same chat and topic (the FSM is per user and topic), and in a group
    only as a reply to the bot's prompt. Anything else is handled as usual; passes `edit`
    (the FSM data)."""

    async def __call__(self, message: Message, state: FSMContext | None = None,
                       raw_state: str | None = None) -> bool | dict[str, Any]:
        # No FSM context for a message without a sender (`from` is optional): not an edit.
        if state is None or raw_state != EditingAnswer.waiting.state:  # read once per update
            return False
        data = await state.get_data()
        if time.time() > float(data.get("until", 0)):
            await state.clear()  # expired: this message is not an edit
            return False
        if message.chat.type != ChatType.PRIVATE:
            replied = message.reply_to_message
            if replied is None or replied.message_id != data.get("prompt_id"):
                return False
        return {"edit": data}


async def _keyboard_with_counts(
    answer_id: int, feedback: FeedbackRepository
) -> InlineKeyboardMarkup:
    likes, dislikes = await feedback.vote_counts(answer_id)
    return answer_keyboard(answer_id, likes, dislikes)


async def vote(query: CallbackQuery, callback_data: AnswerAction, bot: Bot, db_user: User,
               chat_row_id: int, lang: str, feedback: FeedbackRepository,
               shared_state: SharedState, metrics: Metrics) -> None:
    answer = await pressed_answer(query, callback_data.message_id, chat_row_id, feedback, lang,
                                  with_text=True)
    if answer is None:
        return
    value = VOTES[callback_data.action]
    tap = f"tap:{db_user.id}:{answer.message.id}:{value}"
    if not await shared_state.claim(tap, TAP_WINDOW):
        await query.answer(t("vote_same", lang))
        return
    try:
        stored = await feedback.toggle_vote(answer.message.id, db_user.id, chat_row_id, value)
    except Exception:  # not saved (the database is away): pressing again must not say it was
        await shared_state.unclaim(tap)
        raise
    key = {1: "vote_up", -1: "vote_down", None: "vote_removed"}[stored]
    metrics.vote({1: "like", -1: "dislike", None: "unvote"}[stored])
    await query.answer(t(key, lang))
    # One keyboard refresh per burst: the first voter in the window refreshes after it.
    tg_message_id = query.message.message_id  # type: ignore[union-attr]
    if await shared_state.claim(f"kb:{answer.message.id}", REFRESH_WINDOW):
        await asyncio.sleep(REFRESH_WINDOW)
        markup = await _keyboard_with_counts(answer.message.id, feedback)
        await replace_markup(bot, query.message.chat.id, tg_message_id, markup)  # type: ignore[union-attr]


async def _regenerate(query: CallbackQuery, bot: Bot, answer: StoredAnswer, model_id: str,
                      lang: str, answerer: Answerer, conversations: ConversationRepository,
                      registry: ModelRegistry, shared_state: SharedState, user: User,
                      limits: Limits, prefs: Preferences | None = None) -> None:
    """A new answer from `model_id`, with the chat's prompt or persona and the presser's
    /settings as they are now (`prefs`)."""
    message = query.message
    assert isinstance(message, Message) and answer.message.parent_id is not None
    if not registry.is_enabled(model_id):
        await query.answer(t("model_gone", lang), show_alert=True)
        return
    refusal = await limits.admit(user, model_id, lang)
    if refusal is not None:
        await query.answer(refusal, show_alert=True)
        return
    # One press, one model call: a double tap (🔄, or a model under 🔀) regenerates once.
    if not await shared_state.claim(f"tap:{query.from_user.id}:{answer.message.id}:regen",
                                    TAP_WINDOW):
        await query.answer(t("regen_same", lang))
        return
    question = await conversations.get_message(answer.message.parent_id)
    assert question is not None
    same = model_id == answer.message.model_id
    await query.answer(t("regenerating", lang) if same
                       else t("regen_with", lang, model=registry.title(model_id)))
    reply_to = None
    if message.chat.type != ChatType.PRIVATE:
        asked = await conversations.deliveries(question.id)
        reply_to = asked[0].tg_message_id if asked else None
    turn = Turn(chat_id=message.chat.id, chat_type=message.chat.type,
                thread_id=topic_of(message), reply_to=reply_to, lang=lang, prefs=prefs)
    async with answerer.chat_lock(message.chat.id, turn.thread_id) as free:
        if not free:
            await bot.send_message(message.chat.id, t("busy", lang), parse_mode=None,
                                   message_thread_id=turn.thread_id)
            return
        await answerer.answer(bot, turn, question, model_id, origin="regenerated", head="take")


async def regenerate(query: CallbackQuery, callback_data: AnswerAction, bot: Bot,
                     db_user: User, chat_row_id: int, chat_prefs: ChatPrefs, lang: str,
                     feedback: FeedbackRepository, answerer: Answerer,
                     conversations: ConversationRepository, registry: ModelRegistry,
                     shared_state: SharedState, limits: Limits) -> None:
    answer = await pressed_answer(query, callback_data.message_id, chat_row_id, feedback, lang)
    if answer is None:
        return
    model_id = answer.message.model_id or registry.default_id
    await _regenerate(query, bot, answer, model_id, lang, answerer, conversations, registry,
                      shared_state, db_user, limits,
                      Preferences.of(chat_prefs, db_user, registry))


async def regenerate_with(query: CallbackQuery, callback_data: RegenWith, bot: Bot,
                          db_user: User, chat_row_id: int, chat_prefs: ChatPrefs, lang: str,
                          feedback: FeedbackRepository, answerer: Answerer,
                          conversations: ConversationRepository, registry: ModelRegistry,
                          shared_state: SharedState, limits: Limits) -> None:
    answer = await pressed_answer(query, callback_data.message_id, chat_row_id, feedback, lang)
    if answer is None:
        return
    markup = await _keyboard_with_counts(answer.message.id, feedback)
    await replace_markup(bot, query.message.chat.id, query.message.message_id, markup)  # type: ignore[union-attr]
    await _regenerate(query, bot, answer, callback_data.model_id, lang, answerer,
                      conversations, registry, shared_state, db_user, limits,
                      Preferences.of(chat_prefs, db_user, registry))


async def show_models(query: CallbackQuery, callback_data: AnswerAction, bot: Bot,
                      chat_row_id: int, lang: str, feedback: FeedbackRepository,
                      registry: ModelRegistry) -> None:
    """🔀 swaps the answer's buttons for the model list; « Back swaps them back."""
    answer = await pressed_answer(query, callback_data.message_id, chat_row_id, feedback, lang)
    if answer is None:
        return
    message = query.message
    if callback_data.action == "switch":
        markup = regen_models_keyboard(answer.message.id, registry.enabled(),
                                       answer.message.model_id, lang)
        await query.answer(t("pick_regen_model", lang))
    else:
        markup = await _keyboard_with_counts(answer.message.id, feedback)
        await query.answer()
    await replace_markup(bot, message.chat.id, message.message_id, markup)  # type: ignore[union-attr]


async def start_edit(query: CallbackQuery, callback_data: AnswerAction, bot: Bot,
                     chat_row_id: int, lang: str, feedback: FeedbackRepository,
                     state: FSMContext, shared_state: SharedState) -> None:
    answer = await pressed_answer(query, callback_data.message_id, chat_row_id, feedback, lang,
                                  with_text=True)
    if answer is None:
        return
    # A double tap asks once (two prompts would each wait for the same edit).
    if not await shared_state.claim(f"tap:{query.from_user.id}:{answer.message.id}:edit",
                                    TAP_WINDOW):
        await query.answer()
        return
    await query.answer()
    message = query.message
    assert isinstance(message, Message)
    group = message.chat.type != ChatType.PRIVATE
    # In groups the forced reply must target the editor: `selective` + a mention of them.
    text = (Text(TextMention(query.from_user.first_name, user=query.from_user), ", ",
                 t("edit_prompt", lang)) if group else Text(t("edit_prompt", lang)))
    prompt = await bot.send_message(
        message.chat.id,
        **text.as_kwargs(),
        reply_markup=ForceReply(input_field_placeholder=t("edit_placeholder", lang),
                                selective=group),
        reply_parameters=ReplyParameters(message_id=message.message_id),
        message_thread_id=topic_of(message),
    )
    await state.set_state(EditingAnswer.waiting)
    await state.set_data({"answer_id": answer.message.id, "prompt_id": prompt.message_id,
                          "until": time.time() + EDIT_TTL})


async def receive_edit(message: Message, edit: dict[str, Any], db_user: User, chat_row_id: int,
                       lang: str, state: FSMContext, feedback: FeedbackRepository,
                       conversations: ConversationRepository, metrics: Metrics) -> None:
    answer = await feedback.answer_in_chat(int(edit.get("answer_id", 0)), chat_row_id,
                                           message.chat.id)
    if answer is None:  # the conversation was deleted meanwhile
        await state.clear()
        await message.reply(t("stale_button", lang), parse_mode=None)
        return
    text = clean_text(message.text or "").strip()
    if is_blank(text):  # only spaces and zero-width characters: nothing to prefer
        await message.reply(t("edit_invisible", lang), parse_mode=None)
        return
    if text == answer.message.content.strip():
        await message.reply(t("edit_unchanged", lang), parse_mode=None)
        return
    edited = await feedback.add_edit(answer.message, db_user.id, chat_row_id, text)
    metrics.vote("edit")
    await conversations.add_deliveries(edited.id, message.chat.id, [message.message_id])
    await state.clear()
    await message.reply(t("edit_saved", lang), parse_mode=None)


async def edit_not_text(message: Message, lang: str) -> None:
    await message.reply(t("edit_not_text", lang), parse_mode=None)


async def cancel(message: Message, lang: str, state: FSMContext | None = None) -> None:
    if state is None or await state.get_state() is None:  # no sender (`from`): no FSM
        await message.answer(t("nothing_to_cancel", lang), parse_mode=None)
        return
    await state.clear()
    await message.answer(t("cancelled", lang), parse_mode=None)


def build_router() -> Router:
    router = Router(name="rating")
    # Every other command ends edit mode (see bot/middlewares/edit_mode.py); /cancel says so.
    router.message.register(cancel, Command("cancel"), flags={KEEPS_EDIT_MODE: True})
    router.message.register(receive_edit, Inline(F.text), Inline(~F.text.startswith("/")),
                            EditReply())
    router.message.register(edit_not_text, Inline(F.content_type.in_(NOT_TEXT)), EditReply())
    router.callback_query.register(vote, AnswerAction.filter(F.action.in_(VOTES)))
    router.callback_query.register(regenerate, AnswerAction.filter(F.action == "regen"))
    router.callback_query.register(show_models,
                                   AnswerAction.filter(F.action.in_({"switch", "back"})))
    router.callback_query.register(start_edit, AnswerAction.filter(F.action == "edit"))
    router.callback_query.register(regenerate_with, RegenWith.filter())
    return router
