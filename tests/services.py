"""Where the tests find the real services (overridable for CI)."""

from __future__ import annotations

import os

from redis.asyncio import Redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def drop_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` (a test's, or a benchmark run's, own)."""
    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
