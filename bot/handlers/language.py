"""/lang: the language the bot speaks to a user, overriding their Telegram client's."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.filters import Inline
from bot.handlers.callbacks import refresh_menu
from bot.texts import LANGUAGES, lang_of, t
from storage.models import User
from storage.repositories.users import UserRepository

AUTO = "auto"  # follow the Telegram client's language


class LangChoice(CallbackData, prefix="lang"):
    code: str


def lang_keyboard(current: str | None, lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in LANGUAGES:
        mark = "✓ " if code == current else ""
        builder.button(text=f"{mark}{t('lang_name', code)}", callback_data=LangChoice(code=code))
    mark = "✓ " if current is None else ""
    builder.button(text=f"{mark}{t('lang_auto', lang)}", callback_data=LangChoice(code=AUTO))
    builder.adjust(2)
    return builder.as_markup()


async def show_languages(message: Message, db_user: User, lang: str) -> None:
    await message.answer(t("lang_menu", lang, language=t("lang_name", lang)), parse_mode=None,
                         reply_markup=lang_keyboard(db_user.lang, lang))


async def choose_language(query: CallbackQuery, callback_data: LangChoice, db_user: User,
                          lang: str, users: UserRepository) -> None:
    code = callback_data.code
    if code != AUTO and code not in LANGUAGES:  # a language since removed, or a forged button
        await query.answer(t("lang_unknown", lang), show_alert=True)
        return
    chosen = None if code == AUTO else code
    await users.set_lang(db_user.id, chosen)
    lang = lang_of(chosen or db_user.language_code)
    await query.answer()
    await refresh_menu(query, t("lang_set", lang, language=t("lang_name", lang)),
                       lang_keyboard(chosen, lang))


def build_router() -> Router:
    router = Router(name="language")
    router.message.register(show_languages, Command("lang"))
    router.callback_query.register(choose_language, LangChoice.filter(), Inline(F.message))
    return router
