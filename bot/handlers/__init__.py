"""Every feature's Router, in the order they are tried. Built fresh per Dispatcher."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import chat, conversation, errors, models, start


def feature_routers() -> list[Router]:
    # chat is last: it holds the catch-alls (unknown commands, any text, non-text).
    return [
        errors.build_router(),
        start.build_router(),
        models.build_router(),
        conversation.build_router(),
        chat.build_router(),
    ]
