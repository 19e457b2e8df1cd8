"""Where a forgotten person could still be found: the whole database as `pg_dump` writes it,
and every key and value under the bot's Redis prefix."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from tests.postgres_server import server_binary


async def pg_dump_text(database_url: str) -> str:
    """`pg_dump` of the database (data and schema, plain SQL), by the PostgreSQL the tests run
    (the machine's newest, or the `pgserver` wheel's: tests/postgres_server.py)."""
    url = make_url(database_url).set(drivername="postgresql")
    process = await asyncio.create_subprocess_exec(
        server_binary("pg_dump"), "--no-owner", url.render_as_string(hide_password=False),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "COPY public.message " in text  # it did dump the data
    return text


async def redis_text(redis_url: str, prefix: str) -> str:
    """Every key under `prefix` with its value (strings, hashes, sets, sorted sets, lists)."""
    redis = Redis.from_url(redis_url)
    lines = []
    try:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=500):
            kind = (await redis.type(key)).decode()
            if kind == "string":
                value = await redis.get(key)
            elif kind == "hash":
                value = await redis.hgetall(key)
            elif kind == "set":
                value = await redis.smembers(key)
            elif kind == "zset":
                value = await redis.zrange(key, 0, -1)
            elif kind == "list":
                value = await redis.lrange(key, 0, -1)
            else:
                value = kind
            lines.append(f"{key.decode()} {value!r}")
    finally:
        await redis.aclose()
    return "\n".join(lines)


def traces(text: str, *needles: object) -> list[str]:
    """The lines of `text` that contain any of `needles` (case-insensitive)."""
    wanted = [str(n).lower() for n in needles]
    return [line for line in text.splitlines() if any(w in line.lower() for w in wanted)]
