"""/privacy: what is stored and who can export it, opting out of (or into) datasets, and
"forget me".

The buttons are flagged `STORES_AUTHOR`: the user middleware does not create or refresh the
presser's row, so a press on an old menu after forgetting re-creates nothing (it gets a toast).
Only the person a menu is for may press it (in groups anyone sees it).
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.filters import Inline
from bot.forgetting import Forgetting
from bot.handlers.callbacks import refresh_menu
from bot.keyboards.privacy import (
    CANCEL,
    CONFIRM,
    FORGET,
    OPT_IN,
    OPT_OUT,
    PrivacyAction,
    confirm_keyboard,
    privacy_keyboard,
)
from bot.middlewares.user import STORES_AUTHOR
from bot.settings import Settings
from bot.texts import chosen_lang, t
from storage.models import User
from storage.outage import unavailable
from storage.repositories.privacy import PrivacyRepository
from storage.repositories.users import TelegramUser

log = logging.getLogger(__name__)


def included(consent: bool | None, settings: Settings) -> bool:
    """Whether a person's data may go into dumps: their choice, else DATA_CONSENT."""
    return consent if consent is not None else settings.data_consent == "opt_out"


def menu_text(consent: bool | None, settings: Settings, lang: str) -> str:
    status = t("privacy_included" if included(consent, settings) else "privacy_excluded", lang)
    if consent is None:
        status = f"{status} {t('privacy_default_note', lang)}"
    return t("privacy_text", lang, status=status)


async def show_privacy(message: Message, db_user: User, lang: str, settings: Settings) -> None:
    if db_user.is_chat:
        await message.answer(t("privacy_needs_person", lang), parse_mode=None)
        return
    await message.answer(
        menu_text(db_user.data_consent, settings, lang), parse_mode=None,
        reply_markup=privacy_keyboard(db_user.telegram_id,
                                      included(db_user.data_consent, settings), lang))


async def press(query: CallbackQuery, callback_data: PrivacyAction, author: TelegramUser,
                lang: str, bot: Bot, settings: Settings, privacy: PrivacyRepository,
                forgetting: Forgetting) -> None:
    if callback_data.owner != query.from_user.id:
        await query.answer(t("privacy_not_yours", lang), show_alert=True)
        return
    person = await privacy.person(author.telegram_id)
    if person is None:  # forgotten (or never stored): nothing to change, nothing created
        await query.answer(t("privacy_already_forgotten", lang), show_alert=True)
        await refresh_menu(query, t("privacy_already_forgotten", lang), None)
        return
    lang = chosen_lang(person.lang, lang)
    owner = author.telegram_id
    action = callback_data.action
    if action in (OPT_OUT, OPT_IN):
        consent = action == OPT_IN
        if not await privacy.set_consent(owner, consent):  # forgotten meanwhile
            await query.answer(t("privacy_already_forgotten", lang), show_alert=True)
            return
        await query.answer(t("privacy_opted_in" if consent else "privacy_opted_out", lang),
                           show_alert=True)
        await refresh_menu(query, menu_text(consent, settings, lang),
                           privacy_keyboard(owner, consent, lang))
    elif action == FORGET:
        await query.answer()
        await refresh_menu(query, t("privacy_forget_confirm", lang),
                           confirm_keyboard(owner, lang))
    elif action == CANCEL:
        await query.answer()
        await refresh_menu(query, menu_text(person.data_consent, settings, lang),
                           privacy_keyboard(owner, included(person.data_consent, settings),
                                            lang))
    elif action == CONFIRM:
        await _forget(query, owner, lang, bot, forgetting)
    else:
        await query.answer(t("stale_button", lang), show_alert=True)


async def _forget(query: CallbackQuery, owner: int, lang: str, bot: Bot,
                  forgetting: Forgetting) -> None:
    try:
        forgotten = await forgetting.forget(bot.id, owner)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning("forgetting a user failed: the database is unavailable")
        await query.answer(t("privacy_failed", lang), show_alert=True)
        return
    if forgotten is None:  # a second press got there first
        await query.answer(t("privacy_already_forgotten", lang), show_alert=True)
        return
    log.info("forgot a user (%s)", ", ".join(f"{k} {v}" for k, v in forgotten.counts.items()))
    await query.answer(t("privacy_forgotten", lang), show_alert=True)
    await refresh_menu(query, t("privacy_forgotten", lang), None)


def build_router() -> Router:
    router = Router(name="privacy")
    router.message.register(show_privacy, Command("privacy"))
    router.callback_query.register(press, PrivacyAction.filter(), Inline(F.message),
                                   flags={STORES_AUTHOR: True})
    return router
