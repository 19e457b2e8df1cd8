"""Fixtures shared by the storage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.migrate import upgrade


@pytest.fixture(params=["postgres", "sqlite"])
async def db_url(request, tmp_path, database_url) -> AsyncIterator[str]:
    """The test's fresh Postgres database, then a migrated SQLite file (the embedded default):
    a test using it runs on both."""
    if request.param == "postgres":
        yield database_url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'chatmux.db'}"
        await upgrade(url)
        yield url
