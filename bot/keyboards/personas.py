"""The /persona picker."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.texts import t
from inference.catalogue import Persona

NO_PERSONA = "-"  # never a persona id (those start with a letter or digit)


class PersonaChoice(CallbackData, prefix="persona"):
    persona_id: str  # catalogue ids are ≤ 40 chars, so this packs within 64 bytes


def persona_keyboard(personas: list[Persona], current: str | None,
                     lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for persona in personas:
        mark = "✓ " if persona.id == current else ""
        builder.button(text=f"{mark}{persona.title}",
                       callback_data=PersonaChoice(persona_id=persona.id))
    mark = "✓ " if current is None else ""
    builder.button(text=mark + t("persona_none", lang),
                   callback_data=PersonaChoice(persona_id=NO_PERSONA))
    builder.adjust(1)
    return builder.as_markup()
