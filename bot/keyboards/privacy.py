"""The /privacy keyboard: opt out of (or back into) datasets, and "forget me" with its
confirmation. Each button carries the Telegram id of the person the menu is for (in groups
anyone sees it; only they may press it)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.texts import t

OPT_OUT, OPT_IN, FORGET, CONFIRM, CANCEL = "out", "in", "forget", "yes", "no"


class PrivacyAction(CallbackData, prefix="priv"):
    owner: int  # the Telegram id the menu is for
    action: str  # OPT_OUT, OPT_IN, FORGET, CONFIRM or CANCEL


def privacy_keyboard(owner: int, included: bool, lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if included:
        builder.button(text=t("privacy_opt_out", lang),
                       callback_data=PrivacyAction(owner=owner, action=OPT_OUT))
    else:
        builder.button(text=t("privacy_opt_in", lang),
                       callback_data=PrivacyAction(owner=owner, action=OPT_IN))
    builder.button(text=t("privacy_forget", lang),
                   callback_data=PrivacyAction(owner=owner, action=FORGET))
    builder.adjust(1)
    return builder.as_markup()


def confirm_keyboard(owner: int, lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("privacy_forget_yes", lang),
                   callback_data=PrivacyAction(owner=owner, action=CONFIRM))
    builder.button(text=t("privacy_forget_no", lang),
                   callback_data=PrivacyAction(owner=owner, action=CANCEL))
    builder.adjust(2)
    return builder.as_markup()
