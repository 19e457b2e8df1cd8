"""Keeps aiogram's per-method response models alive.

aiogram validates every Bot API answer as `Response[<the method's result type>]`, a pydantic
generic model built on first use. pydantic caches such models weakly, and a class lives in
reference cycles, so each garbage collection drops them and the next call builds its model
again: a schema built on the hot path, over and over (~10% of a busy bot's CPU). A session
middleware holds each one for the life of the process.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType


class KeepResponseTypes(BaseRequestMiddleware):
    def __init__(self) -> None:
        self._kept: dict[type, type] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        kind = type(method)
        if kind not in self._kept:
            self._kept[kind] = Response[method.__returning__]
        return await make_request(bot, method)
