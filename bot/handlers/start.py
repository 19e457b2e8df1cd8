"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import LinkPreviewOptions, Message

from bot.firstrun import first_run_guide
from bot.settings import Settings
from bot.texts import t
from inference.first_run import FirstRunCheck
from inference.registry import ModelRegistry
from storage.models import User


async def start(message: Message, db_user: User, lang: str, registry: ModelRegistry,
                settings: Settings, first_run: FirstRunCheck) -> None:
    name = db_user.first_name or "there"
    model = registry.spec(db_user.model_id).title
    text = t("start", lang, name=name, model=model) + "\n\n" + t("start_privacy", lang)
    await message.answer(text, parse_mode=None)
    await guide_admin(message, lang, settings, first_run)


async def guide_admin(message: Message, lang: str, settings: Settings,
                      first_run: FirstRunCheck) -> None:
    """An admin in their private chat, while no model can answer, gets the first-run guide
    (it names key variables and hosts: nobody else sees it)."""
    if (message.chat.type != ChatType.PRIVATE or message.from_user is None
            or message.from_user.id not in settings.admin_ids):
        return
    report = await first_run.report()
    if not report.any_reachable:
        guide = first_run_guide(report, lang, settings.models_file, first_run.timeout)
        await message.answer(**guide.as_kwargs(),
                             link_preview_options=LinkPreviewOptions(is_disabled=True))


async def help_(message: Message, lang: str) -> None:
    await message.answer(t("help", lang), parse_mode=None)


def build_router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router
