"""Every feature's Router, in the order they are tried. Built fresh per Dispatcher."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import (
    admin,
    arena,
    chat,
    conversation,
    edited,
    errors,
    exports,
    language,
    leaderboard,
    limits,
    media,
    models,
    personas,
    privacy,
    rating,
    settings,
    start,
    stats,
)


def feature_routers() -> list[Router]:
    # chat is last: it holds the catch-alls (unknown commands, any text, non-text).
    return [
        errors.build_router(),
        start.build_router(),
        language.build_router(),
        models.build_router(),
        personas.build_router(),
        settings.build_router(),
        privacy.build_router(),
        conversation.build_router(),
        stats.build_router(),
        leaderboard.build_router(),
        admin.build_router(),
        limits.build_router(),
        exports.build_router(),
        arena.build_router(),
        rating.build_router(),  # before chat: an answer being edited is not a question
        edited.build_router(),
        media.build_router(),  # photos and voice notes, before chat's "text only" line
        chat.build_router(),
    ]
