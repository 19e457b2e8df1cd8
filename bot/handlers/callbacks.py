"""Checks shared by every button that refers to a stored answer."""

from __future__ import annotations

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.streaming.delivery import frame_request, is_gone, is_not_modified
from bot.texts import t
from storage.repositories.conversations import shown
from storage.repositories.feedback import FeedbackRepository, StoredAnswer


async def pressed_answer(query: CallbackQuery, answer_id: int, chat_row_id: int,
                         feedback: FeedbackRepository, lang: str,
                         *, with_text: bool = False) -> StoredAnswer | None:
    """The answer a button refers to, if the button really sits under it in this chat and the
    presser may judge it; otherwise the query is answered with an error toast and None.
    `with_text`: also refuse an answer the user never saw as text (failed, empty,
    undelivered: nothing to rate or edit)."""
    message = query.message
    if not isinstance(message, Message):
        await query.answer(t("stale_button", lang), show_alert=True)
        return None
    if message.chat.type == ChatType.PRIVATE and query.from_user.id != message.chat.id:
        await query.answer(t("not_yours", lang), show_alert=True)
        return None
    answer = await feedback.answer_in_chat(answer_id, chat_row_id, message.chat.id)
    if (answer is None or message.message_id not in answer.tg_message_ids
            or (with_text and not shown(answer.message))):
        await query.answer(t("stale_button", lang), show_alert=True)
        return None
    return answer


async def refresh_menu(query: CallbackQuery, text: str,
                       markup: InlineKeyboardMarkup | None) -> None:
    """Show a menu's new state in the message its button was pressed under: an unchanged
    menu (a double tap) or a deleted message is not an error, nor one the bot can no longer
    see (an `InaccessibleMessage`: the choice stands, there is nothing to redraw)."""
    if not isinstance(query.message, Message):
        return
    try:
        await query.message.edit_text(text, parse_mode=None, reply_markup=markup)
    except TelegramBadRequest as exc:
        if not (is_not_modified(exc) or is_gone(exc)):
            raise


async def replace_markup(bot: Bot, chat_id: int, message_id: int,
                         markup: InlineKeyboardMarkup | None) -> None:
    """Best-effort keyboard update: "not modified", a deleted message and a 429 are not errors
    (the next update shows the latest state anyway)."""
    try:
        with frame_request():
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id,
                                                reply_markup=markup)
    except TelegramRetryAfter:
        return
    except TelegramBadRequest as exc:
        if not (is_not_modified(exc) or is_gone(exc)):
            raise
