"""/stats (also /history): what the user has contributed."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.feedback import FeedbackRepository


async def show_stats(message: Message, db_user: User, lang: str, feedback: FeedbackRepository,
                     registry: ModelRegistry) -> None:
    stats = await feedback.user_stats(db_user.id)
    favourite = ("\n" + t("stats_favourite", lang, model=registry.title(stats.favourite_model))
                 if stats.favourite_model else "")
    await message.answer(
        t("stats", lang, likes=stats.likes, dislikes=stats.dislikes, edits=stats.edits,
          battles=stats.battles, favourite=favourite),
        parse_mode=None,
    )


def build_router() -> Router:
    router = Router(name="stats")
    router.message.register(show_stats, Command("stats", "history"))
    return router
