"""The installed `chatmux` command as a child process, for tests of the real entry point."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

CHATMUX = str(Path(sys.executable).with_name("chatmux"))
# The command imports this checkout's code even where the package is installed from another.
CHECKOUT = str(Path(__file__).resolve().parents[2])


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without chatmux's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "REDIS_"))}
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = CHECKOUT
    env.update(extra)
    return env


async def start_run(tmp_path: Path, telegram, database_url: str, redis_prefix: str,
                    **env: str) -> asyncio.subprocess.Process:
    """`chatmux run` in `tmp_path` (which holds models.yaml) against the fake Telegram, the
    test's database and the shared Redis; `env` adds or overrides settings."""
    from tests.conftest import REDIS_URL

    return await asyncio.create_subprocess_exec(
        CHATMUX, "run", cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=base_env(
            BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.base_url,
            DATABASE_URL=database_url, REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix,
            ALPHA_KEY="sk-test-alpha", **env,
        ),
    )
