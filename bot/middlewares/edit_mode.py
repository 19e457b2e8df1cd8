"""Commands end ✏️ edit mode: after `/new`, `/model`, `/arena` or any other command the next
message is not taken as the improved answer. The command itself still runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.fsm.context import FSMContext
from aiogram.types import Message, TelegramObject

# Handler flag: this command leaves edit mode to the handler (/cancel reports what it ended).
KEEPS_EDIT_MODE = "keeps_edit_mode"


class EndEditOnCommand(BaseMiddleware):
    """An inner middleware on messages: it runs only for commands a handler took (ours, not
    another bot's), just before that handler."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        state: FSMContext | None = data.get("state")
        if (isinstance(event, Message) and (event.text or "").startswith("/")
                and state is not None and data.get("raw_state") is not None
                and not get_flag(data, KEEPS_EDIT_MODE)):
            await state.clear()
        return await handler(event, data)
