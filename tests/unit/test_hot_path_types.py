"""Costs that do not show in behaviour: no filter or handler runs in a thread, aiogram's
response models are built once per process, and the bot does not load what it rarely uses."""

from __future__ import annotations

import gc
import subprocess
import sys

from aiogram import Router
from aiogram.methods import Response, SendMessage
from pydantic._internal import _generics

from bot.handlers import feature_routers
from bot.response_types import KeepResponseTypes


def _routers(routers: list[Router]):
    for router in routers:
        yield router
        yield from _routers(router.sub_routers)


def test_no_filter_or_handler_is_run_in_a_worker_thread():
    """aiogram runs a plain (sync) callable, magic filters included, via asyncio.to_thread:
    a thread hop per check per update. Every one is awaited in place (see bot.filters)."""
    threaded = []
    for router in _routers(feature_routers()):
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                for item in [handler, *(handler.filters or [])]:
                    if not item.awaitable:
                        threaded.append(f"{router.name}.{name}: {item.callback!r}")
            threaded += [f"{router.name}.{name} (router filter): {f.callback!r}"
                         for f in observer._handler.filters or [] if not f.awaitable]
    assert threaded == []


async def test_response_models_are_built_once_whatever_the_garbage_collector_does(
    monkeypatch,
):
    """pydantic caches `Response[Message]` weakly: without the middleware holding it, every
    collection drops it and the next Bot API call builds it again (milliseconds each)."""
    built = []
    create = _generics.create_generic_submodel

    def counted(*args, **kwargs):
        built.append(args[0])
        return create(*args, **kwargs)

    monkeypatch.setattr(_generics, "create_generic_submodel", counted)
    keep = KeepResponseTypes()

    async def call(bot, method):
        Response[method.__returning__]  # what aiogram's check_response does
        return True

    for _ in range(5):
        await keep(call, None, SendMessage(chat_id=1, text="…"))
        gc.collect()
    assert len(built) <= 1


def test_the_bot_starts_without_the_numeric_stack():
    """numpy, scipy, pyarrow and matplotlib (~100 MB of a bot's memory) load with the first
    export or leaderboard, in a worker thread, not with every bot process."""
    heavy = ("numpy", "scipy", "pyarrow", "matplotlib", "torch", "transformers")
    code = ("import sys, bot.__main__, bot.app, bot.handlers; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120).stdout.strip()
    assert loaded == ""
