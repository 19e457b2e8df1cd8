"""End-to-end fixtures: `chatmux run` against the fake Bot API and fake models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot.settings import Settings
from storage.db import create_engine
from tests.harness import running_bot


@pytest.fixture
async def bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
              ) -> AsyncIterator[Settings]:
    """The bot running with real Postgres and Redis."""
    async with running_bot(
        monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
    ) as settings:
        yield settings


@pytest.fixture
async def db(database_url) -> AsyncIterator[sa.ext.asyncio.AsyncConnection]:
    """A connection to the bot's database, to check what it stored."""
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        yield conn
    await engine.dispose()
