"""Buttons under answers: 👍 👎 🔄 🔀 ✏️, and the model list for 🔀."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.keyboards import StoredId
from bot.texts import t
from inference.catalogue import ModelSpec

VOTES = {"up": 1, "down": -1}


class AnswerAction(CallbackData, prefix="ans"):
    """`message_id` is the stored answer's id (not a Telegram id)."""

    action: str  # up | down | regen | switch | edit | back
    message_id: StoredId


class RegenWith(CallbackData, prefix="rgw"):
    message_id: StoredId
    model_id: str  # ≤ 40 chars: "rgw:" + 15-digit id + ":" + 40 stays under 64 bytes


def _count(emoji: str, n: int) -> str:
    return f"{emoji} {n}" if n else emoji


def answer_keyboard(message_id: int, likes: int = 0, dislikes: int = 0) -> InlineKeyboardMarkup:
    def button(text: str, action: str) -> InlineKeyboardButton:
        data = AnswerAction(action=action, message_id=message_id).pack()
        return InlineKeyboardButton(text=text, callback_data=data)

    return InlineKeyboardMarkup(inline_keyboard=[[
        button(_count("👍", likes), "up"),
        button(_count("👎", dislikes), "down"),
        button("🔄", "regen"),
        button("🔀", "switch"),
        button("✏️", "edit"),
    ]])


def retry_keyboard(message_id: int) -> InlineKeyboardMarkup:
    """Under an error message or a cut answer: try again."""
    data = AnswerAction(action="regen", message_id=message_id).pack()
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="🔄",
                                                                       callback_data=data)]])


def regen_models_keyboard(message_id: int, models: list[ModelSpec], current: str | None,
                          lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for spec in models:
        if spec.id != current:
            builder.button(text=spec.title,
                           callback_data=RegenWith(message_id=message_id, model_id=spec.id))
    builder.button(text=t("back", lang),
                   callback_data=AnswerAction(action="back", message_id=message_id))
    builder.adjust(1)
    return builder.as_markup()
