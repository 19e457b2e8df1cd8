"""The /model picker."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from inference.catalogue import ModelSpec


class ModelChoice(CallbackData, prefix="model"):
    model_id: str  # catalogue ids are ≤ 40 chars, so this packs within 64 bytes


def model_keyboard(models: list[ModelSpec], current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for spec in models:
        mark = "✓ " if spec.id == current else ""
        builder.button(text=f"{mark}{spec.title}", callback_data=ModelChoice(model_id=spec.id))
    builder.adjust(1)
    return builder.as_markup()
