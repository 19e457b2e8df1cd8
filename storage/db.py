"""Engine and session factory for Postgres (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Postgres: how long a new connection may take (asyncpg's own default is a minute), and how
# long a request waits for a pooled connection before the user is told to try again.
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 10.0


def create_engine(url: str, *, command_timeout: float | None = None,
                  **kwargs: Any) -> AsyncEngine:
    """`command_timeout` (Postgres): seconds any one statement may take before it fails (the
    bot's are short; a server that stopped answering must not hold a user forever). None for
    one-shot jobs with long queries (exports)."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    # A fixed pool: overflow connections are opened and closed again under load (churn).
    # Transactions are short and never held across network waits, so 20 connections serve a
    # busy process. Each checkout is pinged first: after a Postgres restart every pooled
    # connection is dead, and without the ping the first request on each would fail; with it,
    # service resumes by itself. Down, Postgres refuses at once or within CONNECT_TIMEOUT.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
    kwargs.setdefault("pool_recycle", 3600)
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = {"timeout": CONNECT_TIMEOUT, **kwargs.pop("connect_args", {})}
    if command_timeout is not None:
        connect_args.setdefault("command_timeout", command_timeout)
    return create_async_engine(url, connect_args=connect_args, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(session: AsyncSession) -> Callable[..., Any]:
    """`insert` with ON CONFLICT support for the session's database."""
    return (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert
