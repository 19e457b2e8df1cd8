"""Magic filters (`F.text`, …) checked on the event loop.

aiogram runs every plain callable filter, magic filters included, in a worker thread
(`asyncio.to_thread`): for a check this cheap, the thread hop and the GIL hand-offs cost far
more than the check, and they add up per handler tried per update. `Inline(F.text)` is the
same check as a `Filter`, which aiogram awaits in place.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from magic_filter import MagicFilter


class Inline(Filter):
    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)
