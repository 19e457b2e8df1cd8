"""/leaderboard: the arena's Bradley–Terry ratings as a table and a chart, for anyone.

Only anonymous judged battles count (a vote cast knowing the models is not blind). The fit,
its bootstrap and the chart are CPU work, done in a worker thread, at most once per
`CACHE_SECONDS` per process; everyone asking meanwhile gets the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.formatting import Pre, Text, as_list

from bot.texts import t
from inference.registry import ModelRegistry
from storage.repositories.feedback import FeedbackRepository

if TYPE_CHECKING:  # numpy, scipy and matplotlib load with the first /leaderboard
    from storage.leaderboard import Row

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
ROUNDS = 200  # bootstrap rounds: intervals good to a few points, in well under a second
MAX_ROWS = 40  # a 4096-character message and a readable chart
ACTION_INTERVAL = 4.5  # Telegram shows a chat action for about 5 s


@dataclass(frozen=True, slots=True)
class Board:
    """A computed leaderboard: rows named by model title (best first), the chart, the count
    of battles it is based on, and how many models there are in all."""

    rows: list[Row]
    png: bytes | None
    battles: int
    models: int


class BoardCache:
    """The latest board, reused for `ttl` seconds; one computation at a time."""

    def __init__(self, ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._board: Board | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    @property
    def fresh(self) -> bool:
        return self._board is not None and self.clock() - self._at < self.ttl

    async def get(self, compute: Callable[[], Awaitable[Board]]) -> Board:
        async with self._lock:  # a burst of requests waits for one computation
            if self._board is None or not self.fresh:
                self._board = await compute()  # a failure is not cached
                self._at = self.clock()
            return self._board


async def compute_board(feedback: FeedbackRepository, registry: ModelRegistry) -> Board:
    """Judged anonymous battles → ratings with intervals → rows with titles and the chart."""
    # numpy, scipy and matplotlib (~100 MB) load with the first /leaderboard, off the loop.
    await asyncio.to_thread(importlib.import_module, "storage.leaderboard_chart")
    from storage.leaderboard import Battle, leaderboard
    from storage.leaderboard_chart import render_chart

    # Streamed and counted as it comes, so memory holds distinct (a, b, winner) triples only.
    counts: Counter[tuple[str, str, str]] = Counter()
    async for key in feedback.judged_battles(anonymous_only=True):
        counts[key] += 1
    if not counts:
        return Board([], None, 0, 0)
    battles = itertools.chain.from_iterable(
        itertools.repeat(Battle(a, b, w), n) for (a, b, w), n in counts.items()
    )
    rows = await asyncio.to_thread(leaderboard, battles, rounds=ROUNDS)
    shown = [replace(r, model=registry.title(r.model)) for r in rows[:MAX_ROWS]]
    png = await asyncio.to_thread(render_chart, shown)
    return Board(shown, png, sum(counts.values()), len(rows))


@contextlib.asynccontextmanager
async def showing_action(bot: Bot, message: Message) -> AsyncIterator[None]:
    """Keep "sending a photo…" on screen while the body runs; a failed action is ignored."""
    thread = message.message_thread_id if message.is_topic_message else None
    done = asyncio.Event()

    async def keep() -> None:
        while not done.is_set():
            try:
                await bot.send_chat_action(message.chat.id, "upload_photo",
                                           message_thread_id=thread)
            except TelegramAPIError as exc:
                log.debug("chat action failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), ACTION_INTERVAL)

    task = asyncio.create_task(keep())
    try:
        yield
    finally:
        done.set()
        await task


async def show_leaderboard(message: Message, bot: Bot, lang: str, feedback: FeedbackRepository,
                           registry: ModelRegistry, cache: BoardCache) -> None:
    try:
        if cache.fresh:
            board = await cache.get(lambda: compute_board(feedback, registry))
        else:
            async with showing_action(bot, message):
                board = await cache.get(lambda: compute_board(feedback, registry))
    except Exception:
        log.exception("the leaderboard could not be computed")
        await message.answer(t("leaderboard_failed", lang), parse_mode=None)
        return
    if not board.rows:
        await message.answer(t("leaderboard_empty", lang), parse_mode=None)
        return
    header = t("leaderboard_header", lang, models=board.models, battles=board.battles)
    if board.models > len(board.rows):
        header += "\n" + t("leaderboard_top", lang, shown=len(board.rows), models=board.models)
    from storage.leaderboard import format_table  # loaded with the board

    await message.answer(**as_list(Text(header), Pre(format_table(board.rows))).as_kwargs())
    if board.png is not None:
        photo = BufferedInputFile(board.png, filename="leaderboard.png")
        try:
            await message.answer_photo(photo, caption=t("leaderboard_caption", lang),
                                       parse_mode=None)
        except TelegramAPIError as exc:  # the table got through; the chart is a bonus
            log.warning("could not send the leaderboard chart: %s", exc)


def build_router() -> Router:
    router = Router(name="leaderboard")
    cache = BoardCache(CACHE_SECONDS)  # one per Dispatcher, i.e. per process

    async def leaderboard_command(message: Message, bot: Bot, feedback: FeedbackRepository,
                                  registry: ModelRegistry, lang: str = "en") -> None:
        await show_leaderboard(message, bot, lang, feedback, registry, cache)

    router.message.register(leaderboard_command, Command("leaderboard"))
    return router
