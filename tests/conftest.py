"""Shared fixtures: real Postgres (a fresh database per test) and Redis, and the fakes."""

# ruff: noqa: E402  (the services are settled before the imports that read where they are)
from __future__ import annotations

from tests.embedded_services import use_services

# Before anything below reads TEST_DATABASE_URL / TEST_REDIS_URL: throwaway servers where none
# is configured or running (tests/embedded_services.py).
use_services()

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from storage.migrate import upgrade
from tests.databases import base_url, create_database, drop_database, unique_name
from tests.fakes.openai_api import FakeModelServer
from tests.fakes.telegram_api import FakeTelegram
from tests.pool_support import client, vllm  # noqa: F401  (pool fixtures, everywhere)
from tests.services import REDIS_URL, drop_redis_prefix


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_template() -> AsyncIterator[str]:
    """A migrated database used as the template for each test's own database."""
    server = base_url()
    own = "TEST_DATABASE_URL" not in os.environ
    name = unique_name("chatmux_test") if own else server.database
    assert name
    if own:
        await create_database(server, name)
    template = server.set(database=name)
    await upgrade(template.render_as_string(hide_password=False))
    yield name
    if own:
        await drop_database(server, name)


@pytest.fixture
async def database_url(pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated Postgres database for one test (copied from the template)."""
    server = base_url()
    name = f"{pg_template}_{uuid.uuid4().hex[:8]}"
    url = await create_database(server, name, template=pg_template)
    yield url.render_as_string(hide_password=False)
    await drop_database(server, name)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the real Redis; its keys are deleted afterwards."""
    prefix = f"chatmux-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    await drop_redis_prefix(REDIS_URL, prefix)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def models() -> AsyncIterator[FakeModelServer]:
    """The server of the harness catalogue's `alpha` and `beta`, entries with `backend: openai`:
    an OpenAI-like fake (prompt + max_tokens over the context is an error)."""
    fake = FakeModelServer({"alpha-served": 8192, "beta-served": 4096}, api_key="sk-test-alpha",
                           flavour="openai")
    await fake.start()
    yield fake
    await fake.stop()
