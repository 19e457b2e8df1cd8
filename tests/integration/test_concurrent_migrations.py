"""Replicas starting together each migrate the database: one at a time, all succeed."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from storage.db import create_engine
from storage.migrate import upgrade
from tests.databases import base_url, create_database, drop_database, unique_name

pytestmark = pytest.mark.timeout(120)


async def test_three_replicas_migrating_a_new_database_at_once_all_start():
    server = base_url()
    name = unique_name("chatmux_migrate")
    url = (await create_database(server, name)).render_as_string(hide_password=False)
    try:
        await asyncio.gather(*(upgrade(url) for _ in range(3)))
        engine = create_engine(url)
        async with engine.connect() as conn:
            heads = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                     ).scalars().all()
        await engine.dispose()
        assert len(heads) == 1
    finally:
        await drop_database(server, name)
