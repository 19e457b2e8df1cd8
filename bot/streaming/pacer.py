"""Reading a model stream while showing it at a steady cadence, never once per token."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.cleaning import StreamCleaner
from bot.streaming.views import AnswerView
from inference.errors import BackendError
from inference.protocol import DecodingStats, Finished, StreamEvent, TextDelta, Usage


@dataclass(slots=True)
class StreamOutcome:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ttft: float | None = None  # seconds to the first text
    total: float = 0.0
    error: BackendError | None = None
    stopped: bool = False
    decoding: DecodingStats | None = None  # local engine: what assisted decoding did
    context_dropped: int = 0  # history messages left out to fit the context window
    context_note: bool = False  # say so under the answer (the first time in a conversation)


async def pump(
    events: AsyncIterator[StreamEvent],
    view: AnswerView,
    *,
    interval: float,
    keepalive: float = 20.0,
    stop: asyncio.Event | None = None,
) -> StreamOutcome:
    """Consume `events`, showing the growing text on `view` at most once per `interval`.

    Backend errors end the stream and are returned in the outcome with the text received so
    far; a set `stop` event cancels the model request and returns what was received. The text is
    cleaned here, as it arrives (`bot.cleaning`): what is shown is what is stored.
    """
    outcome = StreamOutcome()
    parts: list[str] = []
    cleaner = StreamCleaner()
    changed = asyncio.Event()
    started = time.monotonic()
    stop = stop or asyncio.Event()

    async def read() -> None:
        async for event in events:
            # Checked as well as cancelled: on Python 3.11 a cancellation that races with a
            # chunk arriving inside `asyncio.wait_for` can be lost.
            if stop.is_set():
                break
            if isinstance(event, TextDelta):
                if outcome.ttft is None:
                    outcome.ttft = time.monotonic() - started
                piece = cleaner.feed(event.text)
                if piece:
                    parts.append(piece)
                    changed.set()
            elif isinstance(event, Finished):
                outcome.finish_reason = event.finish_reason
                outcome.usage = event.usage
                outcome.decoding = event.decoding
            # A fast server fills the socket faster than chunks are parsed, and reading
            # buffered data never suspends: let the loop run other updates (a stop press) too.
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(stop.wait())
    try:
        while not reader.done():
            waiter = asyncio.create_task(changed.wait())
            await asyncio.wait(
                {reader, waiter, stopper}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if stop.is_set():
                reader.cancel()
                break
            if reader.done():
                break
            if changed.is_set():
                changed.clear()
                await view.show("".join(parts))
                await asyncio.wait({reader, stopper}, timeout=interval)
            else:
                await view.keepalive()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    except BackendError as exc:
        outcome.error = exc
    finally:
        stopper.cancel()
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendError):
                await reader
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
    outcome.stopped = stop.is_set() and outcome.finish_reason is None
    parts.append(cleaner.flush())
    outcome.text = "".join(parts)
    outcome.total = time.monotonic() - started
    return outcome
