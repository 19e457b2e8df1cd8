"""Stop buttons: a draft's stop press reaches the generation that owns the draft."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class StopSignals:
    """In-process map (chat id, draft id) → stop event for the answers being streamed."""

    def __init__(self) -> None:
        self._events: dict[tuple[int, int], asyncio.Event] = {}

    @contextlib.contextmanager
    def watch(self, chat_id: int, draft_id: int) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events[(chat_id, draft_id)] = event
        try:
            yield event
        finally:
            self._events.pop((chat_id, draft_id), None)

    def stop(self, chat_id: int, draft_id: int) -> bool:
        # A long answer's later parts use draft ids above the first one.
        for (chat, first), event in self._events.items():
            if chat == chat_id and first <= draft_id < first + 64:
                event.set()
                return True
        return False
