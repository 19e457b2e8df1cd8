"""Last resort: log the failure, tell the user in one line, never show a trace."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ErrorEvent

from bot.addressing import topic_of
from bot.observability.metrics import Metrics
from bot.texts import lang_of, t

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot, metrics: Metrics | None = None) -> bool:
    if metrics is not None:
        metrics.error("handler")
    log.error("update %s failed", event.update.update_id, exc_info=event.exception)
    update = event.update
    if update.callback_query is not None:
        lang = lang_of(update.callback_query.from_user.language_code)
        try:
            await update.callback_query.answer(t("err_internal", lang), show_alert=True)
        except Exception:  # the query may be too old; nothing more to do
            log.debug("could not answer the failed callback", exc_info=True)
        return True
    message = update.message
    if message is not None:
        lang = lang_of(message.from_user.language_code if message.from_user else None)
        try:
            await bot.send_message(message.chat.id, t("err_internal", lang), parse_mode=None,
                                   message_thread_id=topic_of(message))
        except Exception:
            log.warning("could not report the failure to chat %s", message.chat.id)
    return True


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
