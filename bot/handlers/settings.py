"""/settings: each user's temperature, answer length and top_p, within the bounds the answering
model's catalogue entry sets (`user_params`). Stored in `User.gen_settings` and clamped again
whenever used (see `bot.prefs`); a value out of bounds (a forged or stale button) is refused
with one line and nothing is stored."""

from __future__ import annotations

import math

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.filters import Inline
from bot.handlers.callbacks import refresh_menu
from bot.keyboards.settings import NAMES, RESET, GenSetting, number, settings_keyboard
from bot.prefs import (
    MIN_MAX_TOKENS,
    TOP_P_MIN,
    Preferences,
    answering_model,
    generation_for,
    in_bounds,
    max_tokens_limit,
)
from bot.texts import t
from inference.catalogue import ModelSpec
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.users import ChatPrefs, UserRepository


def _value(params: dict[str, float | int], name: str, lang: str) -> str:
    value = params.get(name)
    return number(value) if value is not None else t("settings_server_default", lang)


def _default(spec: ModelSpec, name: str) -> str:
    value = spec.params.as_request().get(name)
    return number(value) if value is not None else "—"


def describe_settings(spec: ModelSpec, settings: dict | None, lang: str) -> str:
    """The values in force for `spec` and its defaults and bounds."""
    current = generation_for(spec, Preferences(settings=settings)).params
    bounds = spec.user_params
    lines = [
        t("settings_header", lang, model=spec.title),
        t("settings_temperature", lang, value=_value(current, "temperature", lang),
          default=_default(spec, "temperature"),
          min=number(bounds.temperature_min), max=number(bounds.temperature_max)),
        t("settings_max_tokens", lang, value=_value(current, "max_tokens", lang),
          default=_default(spec, "max_tokens"), limit=max_tokens_limit(spec)),
    ]
    if bounds.top_p:
        lines.append(t("settings_top_p", lang, value=_value(current, "top_p", lang),
                       default=_default(spec, "top_p")))
    lines.append(t("settings_hint", lang))
    return "\n".join(lines)


def _menu(owner: int, spec: ModelSpec, settings: dict | None,
          lang: str) -> tuple[str, InlineKeyboardMarkup]:
    current = generation_for(spec, Preferences(settings=settings)).params
    return (describe_settings(spec, settings, lang),
            settings_keyboard(owner, spec, current, lang))


async def show_settings(message: Message, db_user: User, chat_prefs: ChatPrefs, lang: str,
                        registry: ModelRegistry) -> None:
    if db_user.is_chat:
        await message.answer(t("settings_needs_person", lang), parse_mode=None)
        return
    spec = registry.spec(answering_model(chat_prefs, db_user, registry))
    text, markup = _menu(db_user.telegram_id, spec, db_user.gen_settings, lang)
    await message.answer(text, parse_mode=None, reply_markup=markup)


def _bounds_text(spec: ModelSpec, name: str, lang: str) -> str:
    bounds = spec.user_params
    if name == "temperature":
        return t("settings_out_of_range", lang, model=spec.title, name=name,
                 min=number(bounds.temperature_min), max=number(bounds.temperature_max))
    if name == "max_tokens":
        return t("settings_out_of_range", lang, model=spec.title, name=name,
                 min=MIN_MAX_TOKENS, max=max_tokens_limit(spec))
    if not bounds.top_p:
        return t("settings_top_p_fixed", lang, model=spec.title)
    return t("settings_out_of_range", lang, model=spec.title, name=name,
             min=number(TOP_P_MIN), max=1)


async def change_setting(query: CallbackQuery, callback_data: GenSetting, db_user: User,
                         chat_prefs: ChatPrefs, lang: str, registry: ModelRegistry,
                         users: UserRepository) -> None:
    if callback_data.owner != query.from_user.id or db_user.is_chat:
        await query.answer(t("settings_not_yours", lang), show_alert=True)
        return
    spec = registry.spec(answering_model(chat_prefs, db_user, registry))
    if callback_data.name == RESET:
        settings = None
        await users.set_gen_settings(db_user.id, None)
        await query.answer(t("settings_reset", lang))
    else:
        name = NAMES.get(callback_data.name)
        try:
            value = float(callback_data.value)
        except ValueError:
            value = math.nan
        if name is None or not math.isfinite(value):
            await query.answer(t("stale_button", lang), show_alert=True)
            return
        if not in_bounds(spec, name, value):
            await query.answer(_bounds_text(spec, name, lang), show_alert=True)
            return
        settings = {**(db_user.gen_settings or {}),
                    name: int(value) if name == "max_tokens" else round(value, 2)}
        await users.set_gen_settings(db_user.id, settings)
        await query.answer(t("settings_saved", lang))
    await refresh_menu(query, *_menu(db_user.telegram_id, spec, settings, lang))


def build_router() -> Router:
    router = Router(name="settings")
    router.message.register(show_settings, Command("settings"))
    router.callback_query.register(change_setting, GenSetting.filter(), Inline(F.message))
    return router
