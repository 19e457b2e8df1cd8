"""The buttons under "this model can't see images": switch to a model that can."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.keyboards import StoredId
from bot.texts import t
from inference.catalogue import ModelSpec

MAX_BUTTONS = 8


class VisionSwitch(CallbackData, prefix="vis"):
    """Switch to a vision model, then answer the stored question with the photo."""

    model_id: str  # ≤ 40 chars: with the prefix and a 64-bit id, within 64 bytes
    question_id: StoredId


def vision_keyboard(models: list[ModelSpec], question_id: int,
                    lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for spec in models[:MAX_BUTTONS]:
        builder.button(text=t("vision_switch_button", lang, model=spec.title),
                       callback_data=VisionSwitch(model_id=spec.id, question_id=question_id))
    builder.adjust(1)
    return builder.as_markup()
