"""Edited questions: a queued one is asked as edited; an answered one gets "Answer the edited
version", which asks it again as a sibling branch (the old question and answer stay)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message

from bot.addressing import addressed_prompt, is_command, topic_of
from bot.cleaning import clean_text
from bot.filters import Inline
from bot.handlers.arena import arena_on
from bot.handlers.callbacks import replace_markup
from bot.keyboards.questions import AskEdited, ask_edited_keyboard
from bot.limits import Limits
from bot.middlewares.user import STORES_AUTHOR
from bot.prefs import Preferences, answering_model
from bot.queueing import EDITED_REACTION, Preloaded, QuestionQueue, Queued, react
from bot.texts import t
from bot.visible import is_blank
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.questions import QuestionRepository
from storage.repositories.users import ChatPrefs


async def on_edited(message: Message, bot: Bot, lang: str, queue: QuestionQueue,
                    questions: QuestionRepository) -> None:
    stored = await questions.by_telegram(message.chat.id, message.message_id)
    if stored is None or is_command(message):
        return  # the bot never took it as a question (in groups: not addressed to it)
    text = clean_text(await addressed_prompt(message, bot) or message.text or "").strip()
    if is_blank(text):
        await message.reply(t("empty", lang), parse_mode=None)
        return
    if not stored.open:
        await message.reply(t("edit_closed", lang), parse_mode=None)
        return
    question = stored.message
    if text == question.content:
        return  # only the formatting (or the mention) changed
    waiting = await queue.is_waiting(message.chat.id, topic_of(message), question.id)
    if waiting and await questions.set_text(question.id, text):
        if not await react(bot, message.chat.id, message.message_id, EDITED_REACTION):
            await message.reply(t("edit_queued", lang), parse_mode=None)
        return
    # Answered, or being answered: offer to answer the edited version too.
    await queue.keep_edit(question.id, text)
    await message.reply(t("edit_offer", lang), parse_mode=None,
                        reply_markup=ask_edited_keyboard(question.id, lang))


async def answer_edited(query: CallbackQuery, callback_data: AskEdited, bot: Bot,
                        db_user: User, chat_row_id: int, chat_prefs: ChatPrefs, lang: str,
                        queue: QuestionQueue, questions: QuestionRepository,
                        registry: ModelRegistry, limits: Limits) -> None:
    offer = query.message
    stored = await questions.get(callback_data.message_id)
    if not isinstance(offer, Message) or stored is None or stored.chat_row_id != chat_row_id:
        await query.answer(t("stale_button", lang), show_alert=True)
        return
    if stored.message.author_id != db_user.id:
        await query.answer(t("edit_not_author", lang), show_alert=True)
        return
    if not stored.open:
        await query.answer(t("edit_closed", lang), show_alert=True)
        return
    model_id = answering_model(chat_prefs, db_user, registry)
    # Before the edit is taken: once the limit resets, the same button asks it.
    refusal = await limits.admit(db_user, model_id, lang)
    if refusal is not None:
        await query.answer(refusal, show_alert=True)
        return
    text = await queue.take_edit(stored.message.id)  # once: a second press finds nothing
    if text is None:
        await query.answer(t("edit_already_asked", lang), show_alert=True)
        return
    asked = await questions.ask_edited(stored.message, db_user.id, text)
    if asked is None:  # /new meanwhile
        await query.answer(t("edit_closed", lang), show_alert=True)
        return
    await query.answer(t("edit_answering", lang))
    await replace_markup(bot, offer.chat.id, offer.message_id, None)
    original = offer.reply_to_message
    # In line where the offer was made (the original is older than what waits).
    entry = Queued.of(offer, asked.question, chat_row_id=chat_row_id, lang=lang,
                      model_id=model_id, arena=arena_on(db_user, registry),
                      prefs=Preferences.of(chat_prefs, db_user, registry),
                      tg_message_id=original.message_id if original is not None else None,
                      edited=True)
    await queue.submit(bot, entry, Preloaded(asked.question, asked.path))


def build_router() -> Router:
    router = Router(name="edited")
    router.edited_message.register(on_edited, Inline(F.text), flags={STORES_AUTHOR: True})
    router.callback_query.register(answer_edited, AskEdited.filter())
    return router
