"""Telling an outage (Postgres or Redis unreachable, restarting, timing out) from a bug, and
riding out a short one.

An outage is worth a "temporarily unavailable, try again" to the user and a one-line warning
in the log; a bug is worth a stack trace. `unavailable` looks through SQLAlchemy's wrapping
(`DBAPIError.orig`) and the exception's causes for the connection-level error underneath.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg.exceptions as pg
import sqlalchemy.exc as sa_exc
from redis import exceptions as redis_exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, no such socket (asyncpg raises these as they are)
    TimeoutError,  # a connect or command timeout
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection came free in `pool_timeout`
    sa_exc.DisconnectionError,
    pg.PostgresConnectionError,  # the connection broke (ConnectionDoesNotExistError, …)
    pg.OperatorInterventionError,  # shutting down, starting up, crashed, statement timeout
    pg.TooManyConnectionsError,
    pg.InterfaceError,  # "connection is closed"
    redis_exc.ConnectionError,  # includes "loading the dataset in memory"
    redis_exc.TimeoutError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database (or Redis) cannot be reached right now, rather than
    that the code or the data is wrong."""
    for current in _chain(exc):
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _OUTAGES):
            return True
    return False


def describe(exc: BaseException) -> str:
    """One short line about an outage for the log (no trace, no connection string)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).splitlines()[0] if str(inner) else ""
    return f"{type(inner).__name__}: {text[:160]}" if text else type(inner).__name__


async def ride_out(operation: Callable[[], Awaitable[T]], *, what: str, patience: float,
                   first_delay: float = 0.25, max_delay: float = 4.0) -> T:
    """Run `operation`; while it fails with an outage, try again with growing pauses for up
    to `patience` seconds, then let the last error through. Other errors go through at once.
    Only for operations that are safe to repeat (one transaction: all or nothing). The first
    retry is logged as a warning, the others at debug level."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = first_delay
    level = logging.WARNING
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not unavailable(exc) or loop.time() + delay > deadline:
                raise
            log.log(level, "%s: the database is unavailable (%s); trying again in %.2g s",
                    what, describe(exc), delay)
            level = logging.DEBUG
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
