"""Engine and session factory for Postgres (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
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
    # A fixed pool: overflow connections are opened and closed again under load (churn), and
    # a pre-ping is three round trips and a transaction of its own on every checkout.
    # Transactions are short and never held across network waits, so 20 connections serve a
    # busy process. Connections a Postgres restart closed are left out at checkout instead
    # (`_skip_closed_connections`), so service resumes by itself; down, Postgres refuses at
    # once or within CONNECT_TIMEOUT.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
    kwargs.setdefault("pool_recycle", 3600)
    connect_args = {"timeout": CONNECT_TIMEOUT, **kwargs.pop("connect_args", {})}
    if command_timeout is not None:
        connect_args.setdefault("command_timeout", command_timeout)
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine.sync_engine, "checkout", _skip_closed_connections)
    return engine


def _skip_closed_connections(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed (a restart, a crash, a terminated backend:
    asyncpg saw the socket close) is replaced before use, at the cost of a local check rather
    than a round trip. (One cut off silently, by the network, fails on its first statement
    within the command timeout, and the pool is renewed then.)"""
    driver = getattr(dbapi_connection, "_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(session: AsyncSession) -> Callable[..., Any]:
    """`insert` with ON CONFLICT support for the session's database."""
    return (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert
