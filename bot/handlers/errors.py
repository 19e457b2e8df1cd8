"""Last resort: log the failure, tell the user in one line, never show a trace.

An outage (the database or Redis unreachable, see `storage.outage`) is not a bug: the user is
told it is temporary and to try again (a toast under a pressed button), and the log gets one
line instead of a stack trace."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ErrorEvent

from bot.addressing import topic_of
from bot.observability.metrics import Metrics
from bot.texts import lang_of, t
from storage.outage import describe, unavailable

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot, metrics: Metrics | None = None) -> bool:
    outage = unavailable(event.exception)
    if metrics is not None:
        metrics.error("outage" if outage else "handler")
    if outage:
        log.warning("update %s not handled: the database or Redis is unavailable (%s)",
                    event.update.update_id, describe(event.exception))
    else:
        log.error("update %s failed", event.update.update_id, exc_info=event.exception)
    update = event.update
    if update.callback_query is not None:
        lang = lang_of(update.callback_query.from_user.language_code)
        try:
            if outage:  # a toast: the press can simply be repeated
                await update.callback_query.answer(t("outage_unavailable", lang))
            else:
                await update.callback_query.answer(t("err_internal", lang), show_alert=True)
        except Exception:  # the query may be too old or answered already; nothing more to do
            log.debug("could not answer the failed callback", exc_info=True)
        return True
    message = update.message
    if message is not None:
        lang = lang_of(message.from_user.language_code if message.from_user else None)
        text = t("outage_unavailable" if outage else "err_internal", lang)
        try:
            await bot.send_message(message.chat.id, text, parse_mode=None,
                                   message_thread_id=topic_of(message))
        except Exception:
            log.warning("could not report the failure to chat %s", message.chat.id)
    return True


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
