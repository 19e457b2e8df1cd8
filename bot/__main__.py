"""`chatmux` command line: run, console, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.settings import ConfigError, Settings, load_settings
from inference.catalogue import CatalogueError, load_catalogue
from storage.migrate import upgrade


def _where(url: str) -> str:
    parsed = make_url(url)
    return parsed.database or "" if parsed.get_backend_name() == "sqlite" else (
        f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"
    )


async def _migrate(settings: Settings) -> None:
    try:
        await upgrade(settings.database_url)
    except (OSError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        raise ConfigError(
            f"cannot migrate the database at {_where(settings.database_url)} ({reason}); "
            "check DATABASE_URL and that the server is running"
        ) from None


async def _run(settings: Settings, console: bool, *, handle_signals: bool = True) -> None:
    from bot.app import run_console_mode, run_polling

    load_catalogue(settings.models_file)  # fail fast, before touching the database
    await _migrate(settings)
    try:
        if console:
            await run_console_mode(settings)
        else:
            await run_polling(settings, handle_signals=handle_signals)
    except (RedisError, OSError) as exc:
        if settings.redis_url and isinstance(exc, RedisError | ConnectionError):
            raise ConfigError(
                f"cannot reach Redis at {settings.redis_url.split('@')[-1]} ({exc}); "
                "check REDIS_URL or unset it to run without Redis"
            ) from None
        raise


def _pool_agent(settings: Settings, gpus_arg: str) -> int:
    from inference.pool.agent import parse_gpus, run_agent

    if not settings.redis_url:
        raise ConfigError("REDIS_URL is required: the pool agent takes its commands from Redis")
    try:
        gpus = parse_gpus(gpus_arg)
        options = {"bind_host": settings.pool_bind_host,
                   "advertise_host": settings.pool_advertise_host,
                   "targets_file": settings.pool_targets_file}
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_agent(settings.redis_url, settings.redis_prefix, gpus,
                                  settings.vllm_bin, host_name=settings.pool_host_name,
                                  **options))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatmux", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (the console when BOT_TOKEN is not set)")
    commands.add_parser("console", help="chat with the bot in this terminal")
    commands.add_parser("migrate", help="upgrade the database schema and exit")
    agent = commands.add_parser("pool-agent", help="launch vLLM servers on this host's GPUs "
                                "when the bot asks (needs REDIS_URL)")
    agent.add_argument("--gpus", required=True, help="GPU ids this agent may use, e.g. 0,1,3")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        # Request logs of httpx/aiohttp could carry tokens in URLs: keep them quiet.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if args.command == "pool-agent":
            return _pool_agent(settings, args.gpus)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"database at {_where(settings.database_url)} is up to date")
            return 0
        console = args.command == "console"
        if args.command == "run" and settings.bot_token is None:
            print(
                "BOT_TOKEN is not set, so chatmux starts in the terminal console; "
                "set BOT_TOKEN (from @BotFather) to serve Telegram.",
                file=sys.stderr,
            )
            console = True
        if console:
            logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings, console))
        return 0
    except (ConfigError, CatalogueError) as exc:
        print(f"chatmux: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
