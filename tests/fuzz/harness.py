"""The real Dispatcher (`build_app` + `build_dispatcher`) fed updates directly, as polling
would, with what the fuzz properties check: errors reported, replies shown, rows stored."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from pydantic import ValidationError

from bot.app import App, build_app, build_bot, build_dispatcher
from bot.settings import Settings
from tests.fakes.openai_api import FakeModelServer
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import write_catalogue
from tests.services import REDIS_URL

ADMIN = 7001  # an admin in ADMIN_IDS
USERS = (7002, 7003)  # people who are not
GROUP = -1001234567890
# What a reply must never contain: the shape of a Python traceback or exception name.
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+"
                   r"|\b[A-Z]\w*(?:Error|Exception)\b(?::|\()")
# Bot API parameters holding text a user reads (messages, edits, captions, toasts).
TEXT_FIELDS = ("text", "caption")
_ids = itertools.count(1_000_000)


class _Collector(logging.Handler):
    """Keeps every ERROR record (the errors router's "update failed" included)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(repr=False)
class FuzzBot:
    app: App
    dp: Dispatcher
    bot: Bot
    telegram: FakeTelegram
    errors: _Collector = field(default_factory=_Collector)
    _checksum_sql: sa.TextClause | None = None

    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example
        return "FuzzBot()"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    # --- feeding -------------------------------------------------------------------
    def stamp(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A fresh update_id: the dedup middleware drops repeats. (Callback query ids come
        from the fake, which answers only the queries it issued.)"""
        return {**raw, "update_id": next(_ids)}

    async def feed_raw(self, raw: dict[str, Any]) -> bool:
        """Parse `raw` as aiogram does every update it receives, then feed it; False if the
        parse rejected it (then no handler ran). Raises whatever feeding raised."""
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError:
            return False
        await self.dp.feed_update(self.bot, update)
        return True

    async def feed(self, raw: dict[str, Any]) -> None:
        """Feed a well-formed update (stamped with fresh ids)."""
        assert await self.feed_raw(self.stamp(raw)), raw

    async def send(self, text: str, *, chat_id: int, **who: Any) -> dict[str, Any]:
        """A user writes (through the fake, so the message exists there); the bot handles it
        and finishes what it started. Returns the update."""
        update = self.telegram.user_sends(text, chat_id=chat_id, **who)
        self.telegram.world.updates.remove(update)  # fed here, never polled
        await self.feed(update)
        await self.idle()
        return update

    def press_update(self, chat_id: int, message_id: int, data: str, *,
                     user_id: int | None = None, language_code: str | None = "en",
                     ) -> dict[str, Any]:
        """The callback_query update of a press (any data, as a modified client sends)."""
        query_id = self.telegram.user_presses(chat_id, message_id, data, user_id=user_id,
                                              first_name="Ann", language_code=language_code,
                                              forged=True)
        world = self.telegram.world
        update = next(u for u in world.updates if u.get("callback_query", {}).get("id")
                      == query_id)
        world.updates.remove(update)
        return update

    async def settle(self) -> None:
        """Wait until the bot's background work has written everything (two equal looks)."""
        await self.idle()
        previous = await self.checksums()
        for _ in range(50):
            await asyncio.sleep(0.2)
            now = await self.checksums()
            if now == previous:
                return
            previous = now
        raise AssertionError("the database kept changing")

    # --- what happened -------------------------------------------------------------
    def begin(self) -> int:
        """Start an example: forget earlier errors; returns the index of its first request."""
        self.errors.records.clear()
        return len(self.telegram.requests)

    def failures(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "")
                for r in self.errors.records]

    def shown_texts(self, since: int = 0) -> list[str]:
        """Texts the bot sent, edited or toasted in requests[since:]."""
        texts = []
        for request in self.telegram.requests[since:]:
            for name in TEXT_FIELDS:
                value = request.params.get(name)
                if isinstance(value, str):
                    texts.append(value)
        return texts

    def assert_clean(self, since: int = 0) -> None:
        """No error was reported (a handler failing reaches the errors router, which logs it)
        and no reply looks like a stack trace."""
        assert not self.failures(), "\n".join(self.failures())
        traces = [text for text in self.shown_texts(since) if TRACE.search(text)]
        assert not traces, traces
        assert not self.telegram.internal_errors, self.telegram.internal_errors

    async def checksums(self) -> dict[str, str]:
        """One md5 per table over all its rows: equal before and after means no write."""
        async with self.app.engine.connect() as conn:
            if self._checksum_sql is None:
                tables = (await conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                    "'public' AND table_type = 'BASE TABLE' AND table_name <> "
                    "'alembic_version' ORDER BY 1"))).scalars().all()
                self._checksum_sql = sa.text(" UNION ALL ".join(
                    f"SELECT '{name}', md5(coalesce(string_agg(t::text, ',' ORDER BY "
                    f"t::text), '')) FROM \"{name}\" t" for name in tables))
            return dict((await conn.execute(self._checksum_sql)).all())

    async def reset_choices(self) -> None:
        """Forget what people chose (prompts, personas, models, languages, settings), so an
        example that sets one and shows it is whole in itself and replays the same."""
        async with self.app.engine.begin() as conn:
            await conn.execute(sa.text(
                "UPDATE chat SET system_prompt = NULL, persona_id = NULL, model_id = NULL"))
            await conn.execute(sa.text(
                "UPDATE user_account SET model_id = NULL, lang = NULL, gen_settings = NULL, "
                "arena_mode = NULL"))

    async def assert_unchanged(self, before: dict[str, str]) -> None:
        after = await self.checksums()
        changed = sorted(name for name in before if after.get(name) != before[name])
        assert not changed, f"written: {changed}"

    @contextlib.asynccontextmanager
    async def writing_nothing(self) -> AsyncIterator[int]:
        """Around an invalid payload (yields the index of its first request): afterwards no
        table has changed and nothing failed."""
        before = await self.checksums()
        since = self.begin()
        yield since
        await self.assert_unchanged(before)
        self.assert_clean(since)

    async def idle(self) -> None:
        """Wait until queued questions are answered (their rows written)."""
        queue, answerer = self.app.queue, self.app.answerer
        await self.telegram.wait_for(
            lambda: not queue._tasks and not answerer._in_flight, timeout=30)


@contextlib.asynccontextmanager
async def fuzz_bot(tmp_path: Path, telegram: FakeTelegram, models: FakeModelServer,
                   database_url: str, redis_prefix: str) -> AsyncIterator[FuzzBot]:
    """The bot's Dispatcher with real Postgres and Redis, the fake Bot API and models, and
    its startup hooks run (commands set, the question queue started), but no polling."""
    # alpha reads text only, beta also images: a photo to alpha offers the switch buttons.
    catalogue = write_catalogue(tmp_path / "models.yaml", models, beta={"vision": True})
    settings = Settings(  # type: ignore[call-arg]
        bot_token=telegram.token, telegram_api_url=telegram.base_url,
        database_url=database_url, models_file=str(catalogue), redis_url=REDIS_URL,
        redis_prefix=redis_prefix, admin_ids=frozenset({ADMIN}), draft_interval=0.05,
        edit_interval_group=0.2, _env_file=None,
        rate_limit_burst=0)  # fuzzing sends faster than people; limits have their own tests
    app = await build_app(settings, secrets={"ALPHA_KEY": "sk-test-alpha"})
    bot = build_bot(settings, app.metrics)
    dp = build_dispatcher(app)
    fuzz = FuzzBot(app, dp, bot, telegram)
    logging.getLogger().addHandler(fuzz.errors)
    try:
        await dp.emit_startup(bot=bot, **dp.workflow_data)
        yield fuzz
    finally:
        logging.getLogger().removeHandler(fuzz.errors)
        await dp.emit_shutdown(bot=bot, **dp.workflow_data)
        await bot.session.close()
        await app.aclose()
