"""The button under an edited question: answer the edited version."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.keyboards import StoredId
from bot.texts import t


class AskEdited(CallbackData, prefix="aed"):
    """`message_id` is the stored question's id (not a Telegram id): "aed:" + ≤19 digits."""

    message_id: StoredId


def ask_edited_keyboard(message_id: int, lang: str) -> InlineKeyboardMarkup:
    data = AskEdited(message_id=message_id).pack()
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("edit_answer_button", lang), callback_data=data)]])
