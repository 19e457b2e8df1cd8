"""Reading a model stream while showing it at a steady cadence, never once per token."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from bot.cleaning import StreamCleaner
from bot.streaming.views import AnswerView
from inference.errors import BackendError
from inference.protocol import (
    DecodingStats,
    Finished,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)


@dataclass(slots=True)
class StreamOutcome:
    text: str = ""
    reasoning: str = ""  # the model's thinking, apart from the answer (never part of `text`)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    ttft: float | None = None  # seconds to the first token (of reasoning or text)
    started: float = 0.0  # time.monotonic() when the model request went out
    shown: float | None = None  # seconds to the first frame of answer text sent to Telegram
    total: float = 0.0
    error: BackendError | None = None
    stopped: bool = False
    interrupted: bool = False  # stopped by the process shutting down, not by the user
    decoding: DecodingStats | None = None  # local engine: what assisted decoding did
    context_dropped: int = 0  # history messages left out to fit the context window
    context_note: bool = False  # say so under the answer (the first time in a conversation)


# A frame must add this much to what the last one showed: at least MIN_STEP characters and
# GROWTH times its length. A process slowed down by load reads the same answer over more
# time; its frames stay as many as the text warrants, not one per interval.
MIN_STEP = 48
GROWTH = 0.5
# ...unless the last frame is this old (a slow model still shows progress).
STALE = 2.0
# The placeholder ("Thinking…", or "typing…") only for a model whose first text takes longer:
# a fast one's first frame is its text, one Bot API call sooner.
PLACEHOLDER_AFTER = 0.3
# The reader lets other tasks run after this many events read without a pause.
YIELD_EVERY = 16
# While a model thinks, frames show about this many characters of the end of its reasoning:
# frames are due as that window moves on, not as the whole reasoning grows.
REASONING_WINDOW = 1500


def _due(size: int, shown: int, since: float, interval: float) -> bool:
    """Whether a frame of `size` characters is worth showing `since` seconds after the last
    one, which showed `shown` characters."""
    if size <= shown or since < interval:
        return False
    return not shown or since >= max(STALE, interval) or (
        size - shown >= max(MIN_STEP, GROWTH * shown))


async def pump(
    events: AsyncIterator[StreamEvent],
    view: AnswerView,
    *,
    interval: float,
    keepalive: float = 20.0,
    stop: asyncio.Event | None = None,
    opening: Callable[[], Awaitable[None]] | None = None,
) -> StreamOutcome:
    """Consume `events`, showing the growing text on `view` at most once per `interval` and
    only as the text grows enough (`_due`). Returns as soon as the stream ends or `stop` is
    set: the final message never waits for a frame's interval.

    Reasoning (`ReasoningDelta`) is collected apart: while only reasoning has arrived, frames
    show it (`view.show("", reasoning)`); once answer text arrives, frames show the answer
    (with the reasoning passed along for the view's collapsed quote).

    Backend errors end the stream and are returned in the outcome with the text received so
    far; a set `stop` event cancels the model request and returns what was received. The text is
    cleaned here, as it arrives (`bot.cleaning`): what is shown is what is stored.

    `opening` (the placeholder) is called if no text arrived within PLACEHOLDER_AFTER seconds
    of the model request, and always before the first frame is shown.
    """
    outcome = StreamOutcome()
    parts: list[str] = []
    size = 0  # characters in `parts`
    cleaner = StreamCleaner()
    thoughts: list[str] = []
    thought = 0  # characters in `thoughts`
    thought_cleaner = StreamCleaner()
    changed = asyncio.Event()
    started = outcome.started = time.monotonic()
    stop = stop or asyncio.Event()

    async def read() -> None:
        nonlocal size, thought
        received = 0
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
                    size += len(piece)
                    changed.set()
            elif isinstance(event, ReasoningDelta):
                if outcome.ttft is None:
                    outcome.ttft = time.monotonic() - started
                piece = thought_cleaner.feed(event.text)
                if piece:
                    thoughts.append(piece)
                    thought += len(piece)
                    if not size:  # once the answer is shown, reasoning changes no frame
                        changed.set()
            elif isinstance(event, Finished):
                outcome.finish_reason = event.finish_reason
                outcome.usage = event.usage
                outcome.decoding = event.decoding
            # A fast server fills the socket faster than chunks are parsed, and reading
            # buffered data never suspends: let the loop run other updates (a stop press) too,
            # every few chunks (a loop pass per chunk cost a poll of every socket per chunk).
            received += 1
            if not received % YIELD_EVERY:
                await asyncio.sleep(0)

    def progress() -> tuple[bool, int]:
        """(answering, how far the frames' subject has got): the answer's size, or while
        there is none yet, the reasoning's."""
        return (True, size) if size else (False, thought)

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(stop.wait())
    ends = {reader, stopper}  # either one ends the wait at once
    shown, shown_at = 0, -math.inf  # the first text is shown at once
    shown_answer = False  # whether the last frame showed the answer (not reasoning)
    try:
        if opening is not None:
            first = asyncio.create_task(changed.wait())
            await asyncio.wait({*ends, first}, timeout=PLACEHOLDER_AFTER,
                               return_when=asyncio.FIRST_COMPLETED)
            first.cancel()
            if not changed.is_set() and not reader.done() and not stop.is_set():
                await opening()
        while not reader.done():
            # Idle until text arrives (or the stream ends, or a stop); between frames the
            # reader only appends, so a chunk does not wake this loop.
            waiter = asyncio.create_task(changed.wait())
            await asyncio.wait({*ends, waiter}, timeout=keepalive,
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if stop.is_set() or reader.done():
                break
            if not changed.is_set():
                await view.keepalive()
                continue
            changed.clear()
            now = time.monotonic()
            answering, reached = progress()
            if answering != shown_answer:
                shown, shown_answer = 0, answering  # the answer's first frame: at once
            if answering:
                due = _due(reached, shown, now - shown_at, interval)
            else:  # the reasoning's window: due as it moves on, not as the total grows
                base = min(shown, REASONING_WINDOW)
                due = _due(reached - shown + base, base, now - shown_at, interval)
            if due:
                shown, shown_at = reached, now
                reasoning = "".join(thoughts)
                await view.show("".join(parts) if answering else "", reasoning=reasoning)
                if answering and outcome.shown is None:
                    outcome.shown = time.monotonic() - started
            # The next frame is an interval away at the earliest; the end of the stream or
            # a stop cuts the wait short.
            await asyncio.wait(ends, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            answering, reached = progress()
            if answering != shown_answer or reached > shown:
                changed.set()  # text that arrived meanwhile is still to be considered
        if stop.is_set():
            reader.cancel()
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
    thoughts.append(thought_cleaner.flush())
    outcome.reasoning = "".join(thoughts).strip()
    outcome.total = time.monotonic() - started
    return outcome
