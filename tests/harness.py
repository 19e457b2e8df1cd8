"""Runs the real `chatmux run` code path in-process against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.__main__ import _run
from bot.settings import Settings, load_settings
from tests.fakes.openai_api import FakeModelServer
from tests.fakes.telegram_api import FakeTelegram


def write_catalogue(path: Path, models: FakeModelServer, top: dict[str, Any] | None = None,
                    extra: list[dict[str, Any]] | None = None, **overrides: Any) -> Path:
    """Two models on the fake server: `alpha` (needs a key from the env) and `beta`.

    `overrides` maps a model id to fields to change; a field set to None is left out.
    `top` adds top-level keys (e.g. `api_keys`); `extra` more entries (on the fake server
    with alpha's key unless they say otherwise).
    """
    entries = [
        {
            "id": "alpha",
            "title": "Alpha",
            "base_url": models.base_url,
            "model": "alpha-served",
            "api_key_env": "ALPHA_KEY",
            "context_window": 8192,
            "system_prompt": "You are Alpha.",
            "params": {"temperature": 0.5, "max_tokens": 2048},
            "timeouts": {"connect": 2, "first_token": 3, "total": 20},
        },
        {
            "id": "beta",
            "title": "Beta",
            "base_url": models.base_url,
            "model": "beta-served",
            "api_key_env": "ALPHA_KEY",
            "context_window": 4096,
            "params": {"temperature": 0.2},
            "timeouts": {"connect": 2, "first_token": 3, "total": 20},
        },
    ]
    entries += [{"base_url": models.base_url, "api_key_env": "ALPHA_KEY", **e}
                for e in extra or []]
    for entry in entries:
        entry.update(overrides.get(entry["id"], {}))
        for key in [k for k, v in entry.items() if v is None]:
            del entry[key]  # an override of None leaves the field out of the entry
    path.write_text(yaml.safe_dump({"default_model": "alpha", "models": entries, **(top or {})}))
    return path


@contextlib.asynccontextmanager
async def running_bot(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    telegram: FakeTelegram,
    models: FakeModelServer,
    database_url: str,
    redis_prefix: str | None,
    catalogue_overrides: dict[str, dict[str, Any]] | None = None,
    catalogue_top: dict[str, Any] | None = None,
    catalogue_extra: list[dict[str, Any]] | None = None,
    **env: str,
) -> AsyncIterator[Settings]:
    """Start `chatmux run` (settings from the environment, as in production) and stop it.

    With WEBHOOK_URL (and WEBHOOK_LISTEN, WEBHOOK_SECRET) in `env` it runs as a webhook
    replica; several may run at once (same Redis prefix and database: replicas of one bot)."""
    from tests.conftest import REDIS_URL

    catalogue = write_catalogue(tmp_path / "models.yaml", models, catalogue_top,
                                catalogue_extra, **(catalogue_overrides or {}))
    values = {
        "BOT_TOKEN": telegram.token,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_URL": database_url,
        "MODELS_FILE": str(catalogue),
        "ALPHA_KEY": "sk-test-alpha",
        "DRAFT_INTERVAL": "0.05",
        "EDIT_INTERVAL_GROUP": "0.2",
        # Tests send questions faster than people: no rate limit unless a test sets one.
        "RATE_LIMIT_BURST": "0",
        **env,
    }
    if redis_prefix is not None:
        values.update(REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix)
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    settings = load_settings()
    # Up when it polls, or (WEBHOOK_URL set: a webhook replica) when it has set the webhook.
    webhooks = len(telegram.calls("setWebhook"))

    def up() -> bool:
        if settings.webhook_url:
            return len(telegram.calls("setWebhook")) > webhooks
        return bool(telegram.calls("getUpdates"))

    task = asyncio.create_task(_run(settings, console=False, handle_signals=False))
    try:
        await telegram.wait_for(lambda: up() or task.done(), timeout=20)
        if task.done():
            task.result()  # surface a start-up failure
        yield settings
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
