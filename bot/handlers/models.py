"""/model: choose which model answers; the choice persists per user. In groups /model shows the
chat's model, and a chat admin's choice sets it for everyone there (`Chat.model_id`)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.chat_admins import may_configure
from bot.filters import Inline
from bot.handlers.callbacks import refresh_menu
from bot.keyboards.models import ModelChoice, model_keyboard
from bot.prefs import answering_model
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.users import ChatPrefs, UserRepository


async def show_models(message: Message, db_user: User, chat_prefs: ChatPrefs, lang: str,
                      registry: ModelRegistry) -> None:
    current = registry.spec(answering_model(chat_prefs, db_user, registry))
    await message.answer(
        t("model_menu", lang, model=current.title), parse_mode=None,
        reply_markup=model_keyboard(registry.enabled(), current.id),
    )


async def choose_model(query: CallbackQuery, callback_data: ModelChoice, bot: Bot,
                       db_user: User, chat_row_id: int, lang: str, registry: ModelRegistry,
                       users: UserRepository) -> None:
    group = query.message.chat.type != ChatType.PRIVATE  # type: ignore[union-attr]
    if group and not await may_configure(bot, query):
        await query.answer(t("chat_admins_only", lang), show_alert=True)
        return
    spec = next((m for m in registry.enabled() if m.id == callback_data.model_id), None)
    if spec is None:
        await query.answer(t("model_gone", lang), show_alert=True)
        return
    if group:
        await users.set_chat_model(chat_row_id, spec.id)
    else:
        await users.set_model(db_user.id, spec.id)
    text = t("model_set_chat" if group else "model_set", lang, model=spec.title)
    await query.answer(text)
    await refresh_menu(query, text, model_keyboard(registry.enabled(), spec.id))


def build_router() -> Router:
    router = Router(name="models")
    router.message.register(show_models, Command("model"))
    router.callback_query.register(choose_model, ModelChoice.filter(), Inline(F.message))
    return router
