"""Telling an outage from a bug (`storage.outage`), and riding a short one out."""

from __future__ import annotations

import asyncpg.exceptions as pg
import pytest
import sqlalchemy.exc as sa_exc
from redis import exceptions as redis_exc

from storage.outage import ride_out, unavailable
from storage.shared_state import MemoryState


def wrapped(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises a driver's error."""
    return sa_exc.DBAPIError.instance("SELECT 1", None, orig, Exception,
                                      connection_invalidated=invalidated)


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connect call failed"),
    OSError("Multiple exceptions: [Errno 111] …, [Errno 99] …"),
    TimeoutError(),
    sa_exc.TimeoutError("QueuePool limit of size 20 overflow 0 reached"),
    wrapped(pg.CannotConnectNowError("the database system is starting up")),
    wrapped(pg.AdminShutdownError("terminating connection due to administrator command")),
    wrapped(pg.ConnectionDoesNotExistError("connection was closed in the middle of operation")),
    wrapped(Exception("anything"), invalidated=True),
    redis_exc.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    redis_exc.TimeoutError("Timeout reading from socket"),
])
def test_outages_are_told_apart(exc):
    assert unavailable(exc)


@pytest.mark.parametrize("exc", [
    ValueError("a bug"),
    KeyError("x"),
    wrapped(pg.UniqueViolationError("duplicate key value")),
    wrapped(pg.InvalidPasswordError("password authentication failed")),
    wrapped(pg.InvalidCatalogNameError('database "none" does not exist')),
    redis_exc.ResponseError("WRONGTYPE"),
])
def test_bugs_and_wrong_settings_are_not_outages(exc):
    assert not unavailable(exc)


def test_an_outage_underneath_another_error_is_found():
    try:
        try:
            raise ConnectionResetError(104, "reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("while storing") from inner
    except RuntimeError as outer:
        assert unavailable(outer)


async def test_ride_out_tries_again_through_an_outage_and_not_after_a_bug():
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "refused")
        return "stored"

    assert await ride_out(flaky, what="storing", patience=5, first_delay=0.01) == "stored"
    assert len(calls) == 3

    async def buggy() -> None:
        calls.append(1)
        raise ValueError("a bug")

    calls.clear()
    with pytest.raises(ValueError):
        await ride_out(buggy, what="storing", patience=5, first_delay=0.01)
    assert len(calls) == 1


async def test_ride_out_gives_up_after_its_patience():
    calls: list[int] = []

    async def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError(111, "refused")

    with pytest.raises(ConnectionRefusedError):
        await ride_out(down, what="storing", patience=0.1, first_delay=0.02)
    assert 2 <= len(calls) <= 4


async def test_a_dropped_claim_can_be_claimed_again():
    state = MemoryState()
    assert await state.claim("tap", 60)
    assert not await state.claim("tap", 60)
    await state.unclaim("tap")
    assert await state.claim("tap", 60)
