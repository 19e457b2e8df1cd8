"""Buttons under an arena battle: who won, then by how much."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.keyboards import StoredId
from bot.texts import t
from storage.models.feedback import STRENGTHS, WINNERS


class BattleVote(CallbackData, prefix="bv"):
    battle_id: StoredId
    winner: str  # a | b | tie | both_bad


class BattleStrength(CallbackData, prefix="bs"):
    battle_id: StoredId
    strength: str  # much_better | better | slightly_better | about_same


def battle_keyboard(battle_id: int, lang: str, winner: str | None = None,
                    strength: str | None = None) -> InlineKeyboardMarkup:
    def mark(text: str, on: bool) -> str:
        return f"✓ {text}" if on else text

    votes = [
        InlineKeyboardButton(
            text=mark(t(f"winner_{w}", lang), w == winner),
            callback_data=BattleVote(battle_id=battle_id, winner=w).pack(),
        )
        for w in WINNERS
    ]
    rows = [votes[:2], votes[2:]]
    if winner in ("a", "b"):
        strengths = [
            InlineKeyboardButton(
                text=mark(t(f"strength_{s}", lang), s == strength),
                callback_data=BattleStrength(battle_id=battle_id, strength=s).pack(),
            )
            for s in STRENGTHS
        ]
        rows += [strengths[:2], strengths[2:]]
    return InlineKeyboardMarkup(inline_keyboard=rows)
