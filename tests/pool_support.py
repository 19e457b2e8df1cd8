"""The GPU pool in tests: a fake `vllm` executable, a signed pool client, an agent running
in-process against the real Redis, and small helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from inference.pool.agent import PoolAgent
from inference.pool.client import PoolClient
from inference.pool.gpus import GpuPool
from inference.pool.protocol import PoolAuth
from tests.services import REDIS_URL

FAKE_VLLM = Path(__file__).resolve().parent / "fakes" / "fake_vllm.py"
POOL_SECRET = "pool-secret-for-tests-0123456789"
AUTH = PoolAuth(POOL_SECRET)


@pytest.fixture
def vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An executable `vllm` that runs the fake with this interpreter; quick to start."""
    wrapper = tmp_path / "vllm"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_VLLM}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "0.05")
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(tmp_path / "record.jsonl"))
    return str(wrapper)


@pytest.fixture
async def client(redis_prefix: str) -> AsyncIterator[PoolClient]:
    redis = Redis.from_url(REDIS_URL)
    yield PoolClient(redis, redis_prefix, AUTH)
    await redis.aclose()


@contextlib.asynccontextmanager
async def agent(prefix: str, tmp_path: Path, vllm: str, *, host: str = "gpu1",
                gpus: tuple[int, ...] | GpuPool = (0, 1, 2), **options
                ) -> AsyncIterator[PoolAgent]:
    redis = Redis.from_url(REDIS_URL)
    options = {"ready_timeout": 15, "restart_backoff": (0.1, 0.1), "poll_interval": 0.05,
               "stop_timeout": 2, "claim_grace": 0.3, "log_dir": tmp_path / "logs", **options}
    options.setdefault("auth", AUTH)
    pool = PoolAgent(redis, prefix=prefix, host_name=host, vllm_bin=vllm,
                     gpus=gpus if isinstance(gpus, GpuPool) else list(gpus), **options)
    await pool.setup()  # its consumer group exists before any command is sent
    task = asyncio.create_task(pool.run())
    try:
        yield pool
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def events(client: PoolClient, request_id: str, wait: float = 20, **kw) -> list[dict]:
    return [e async for e in client.events(request_id, wait, **kw)]


async def served(base_url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/models") as resp:
        return [m["id"] for m in (await resp.json())["data"]]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def read(path: str | Path) -> str:
    return Path(path).read_text()


def records(tmp_path: Path) -> list[dict]:
    """What each fake vllm process was started with: its argv and CUDA_VISIBLE_DEVICES."""
    return [json.loads(line) for line in read(tmp_path / "record.jsonl").splitlines()]
