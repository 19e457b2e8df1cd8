"""Fresh Postgres databases for tests: one migrated template per run, one copy per test."""

from __future__ import annotations

import os
import uuid

import asyncpg
from sqlalchemy.engine import URL, make_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def base_url() -> URL:
    """The run's database (CI creates one and sets TEST_DATABASE_URL) or a server to make one on."""
    return make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_URL))


def _dsn(url: URL, database: str) -> str:
    return url.set(drivername="postgresql", database=database).render_as_string(
        hide_password=False
    )


async def _admin(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(_dsn(url, "postgres"))


async def create_database(url: URL, name: str, template: str | None = None) -> URL:
    conn = await _admin(url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return url.set(database=name)


async def drop_database(url: URL, name: str) -> None:
    conn = await _admin(url)
    try:
        # FORCE terminates the sessions and drops in one step: a connection a test left
        # behind (say, a pool reconnecting) cannot slip in between.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
