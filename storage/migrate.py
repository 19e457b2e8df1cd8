"""Run Alembic migrations programmatically (`chatmux migrate`, and on `chatmux run`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_KEY = 0x63686174  # pg_advisory_lock key of chatmux's migrations ("chat")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"
    )
    config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url`. Alembic is synchronous, so it runs in a worker thread.
    On PostgreSQL one process at a time (replicas starting together): the others wait, then
    find the database upgraded."""
    async with _one_at_a_time(url):
        await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


@contextlib.asynccontextmanager
async def _one_at_a_time(url: str) -> AsyncIterator[None]:
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:  # a session-level lock, held by this connection
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            try:
                yield
            finally:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": LOCK_KEY})
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)
