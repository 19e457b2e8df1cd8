"""/model: choose which model answers; the choice persists per user."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.filters import Inline
from bot.keyboards.models import ModelChoice, model_keyboard
from bot.streaming.delivery import is_not_modified
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.users import UserRepository


async def show_models(message: Message, db_user: User, lang: str,
                      registry: ModelRegistry) -> None:
    current = registry.spec(db_user.model_id)
    await message.answer(
        t("model_menu", lang, model=current.title), parse_mode=None,
        reply_markup=model_keyboard(registry.enabled(), current.id),
    )


async def choose_model(query: CallbackQuery, callback_data: ModelChoice, db_user: User,
                       lang: str, registry: ModelRegistry, users: UserRepository) -> None:
    spec = next((m for m in registry.enabled() if m.id == callback_data.model_id), None)
    if spec is None:
        await query.answer(t("model_gone", lang), show_alert=True)
        return
    await users.set_model(db_user.id, spec.id)
    await query.answer(t("model_set", lang, model=spec.title))
    try:
        await query.message.edit_text(  # type: ignore[union-attr]
            t("model_set", lang, model=spec.title), parse_mode=None,
            reply_markup=model_keyboard(registry.enabled(), spec.id),
        )
    except TelegramBadRequest as exc:
        if not is_not_modified(exc):
            raise


def build_router() -> Router:
    router = Router(name="models")
    router.message.register(show_models, Command("model"))
    router.callback_query.register(choose_model, ModelChoice.filter(), Inline(F.message))
    return router
