"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User


async def start(message: Message, db_user: User, lang: str, registry: ModelRegistry) -> None:
    name = db_user.first_name or "there"
    model = registry.spec(db_user.model_id).title
    text = t("start", lang, name=name, model=model) + "\n\n" + t("start_privacy", lang)
    await message.answer(text, parse_mode=None)


async def help_(message: Message, lang: str) -> None:
    await message.answer(t("help", lang), parse_mode=None)


def build_router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router
