"""Admin commands: add, remove, enable and disable models while the bot runs; see the pool.

Only for ADMIN_IDS, and only in their private chat with the bot. For anyone else, and in any
group, these commands do not exist: the router's filter fails and the message reaches the
"unknown command" answer like any other unknown command, so nothing private reaches a group.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import Message

from bot.admin_args import (
    UsageError,
    endpoint_spec,
    export_policy,
    launch_request,
    ray_launch_request,
    split_args,
)
from bot.cleaning import clean_text
from bot.model_sync import ModelSync
from bot.pool_launch import launch_in_pool, pool_client
from bot.ray_launch import admin_lang, launch_on_ray, remove_from_ray
from bot.settings import Settings
from bot.status import models_report
from bot.texts import lang_of, t
from inference.errors import BackendError
from inference.keys import KeyRefused
from inference.pool.argv import shown
from inference.probe import served_models
from inference.redaction import redact_url
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.admin import AdminRepository

log = logging.getLogger(__name__)
_background: set[asyncio.Task] = set()

USAGE = {
    "addmodel": (
        "Usage: /addmodel <id> url=<base_url> model=<served name> [title=\"…\"] "
        "[key_env=<ENV>] [vision=1] [context=<tokens>] [quota=50/day] [exportable=0] "
        "[data_license=<spdx>] — several url= make replicas\n"
        "or: /addmodel <id> hf=<org/target or /path> draft=<org/draft> [k=4] [gpus=1] "
        "[context=<tokens>] [dtype=auto|float16|bfloat16|float32] [trust_remote_code=1] "
        "[replicas=N or MIN-MAX, with POOL=ray]\n"
        "Example: /addmodel llama url=http://gpu1:8000/v1 model=llama-3.1-8b title=\"Llama 8B\""
    ),
    "rmmodel": "Usage: /rmmodel <id> — example: /rmmodel llama",
    "enable": "Usage: /enable <id> — example: /enable llama",
    "disable": "Usage: /disable <id> — example: /disable llama",
}


class IsAdmin(Filter):
    """An admin, writing in their private chat with the bot (never in a group)."""

    async def __call__(self, message: Message, settings: Settings) -> bool:
        return (message.chat.type == ChatType.PRIVATE and message.from_user is not None
                and message.from_user.id in settings.admin_ids)


async def add_model(message: Message, command: CommandObject, bot: Bot, db_user: User,
                    registry: ModelRegistry, admin: AdminRepository, model_sync: ModelSync,
                    settings: Settings) -> None:
    try:
        model_id, options = split_args(command.args)
        if ("hf" in options or "draft" in options) and settings.pool == "ray":
            policy = export_policy(options)
            request, replicas, title = ray_launch_request(model_id, options)
            await launch_on_ray(message, bot, request, replicas, title, db_user, admin,
                                model_sync, settings, export_policy=policy)
            return
        if "hf" in options or "draft" in options:
            policy = export_policy(options)
            request, title = launch_request(model_id, options)
            await launch_in_pool(message, bot, request, title, db_user, admin, model_sync,
                                 settings, export_policy=policy)
            return
        spec = endpoint_spec(model_id, options)
    except UsageError as exc:
        await message.answer(f"⚠️ {exc}\n{USAGE['addmodel']}", parse_mode=None)
        return
    try:  # before any request: a key goes only where the operator allowed it
        key = registry.keys.key_for(spec)
    except KeyRefused as exc:
        await message.answer(f"⚠️ key_env: {exc}; nothing added", parse_mode=None)
        return
    if spec.api_key_env and not key:
        await message.answer(f"⚠️ {spec.api_key_env} is allowed for models but has no value on "
                             "this bot; nothing added", parse_mode=None)
        return
    for url in spec.urls:
        shown = redact_url(url)
        try:
            served = await served_models(url, key)
        except BackendError as exc:
            await message.answer(f"⚠️ {shown} did not answer /models ({exc.kind}); nothing "
                                 "added", parse_mode=None)
            return
        if spec.model not in served:
            # The server's own words: cleaned (a broken surrogate would fail the reply).
            listed = clean_text(", ".join(name[:80] for name in served[:10])) or "nothing"
            await message.answer(f"⚠️ {shown} does not serve {spec.model!r} (it serves: "
                                 f"{listed}); nothing added", parse_mode=None)
            return
    replaced = registry.get(model_id) is not None
    await admin.save_override(model_id, actor_id=db_user.id, action="addmodel",
                              spec=spec.model_dump(mode="json", exclude={"id"}))
    await model_sync.changed()
    verb = "replaced" if replaced else "added"
    await message.answer(f"✅ {spec.title} ({model_id}) {verb}: {len(spec.urls)} replica(s), "
                         f"serving {spec.model}", parse_mode=None)


async def _tell_moved(bot: Bot, users: list[tuple[int, str | None]], old: str,
                      registry: ModelRegistry) -> None:
    """Each user moved off a retired model hears it once, paced under Telegram's limits."""
    for telegram_id, language in users:
        lang = lang_of(language)
        text = t("model_retired", lang, old=old, model=registry.spec(None).title)
        try:
            await bot.send_message(telegram_id, text, parse_mode=None)
        except TelegramAPIError as exc:  # never started the bot privately, or blocked it
            log.info("could not tell user about a retired model: %s", exc)
        await asyncio.sleep(0.05)


async def _set_state(message: Message, command: CommandObject, action: str, db_user: User,
                     registry: ModelRegistry, admin: AdminRepository,
                     model_sync: ModelSync, settings: Settings) -> None:
    model_id = (command.args or "").strip()
    spec = registry.get(model_id) if model_id else None
    if spec is None:
        known = ", ".join(m.id for m in registry.all())
        await message.answer(f"⚠️ no model {shown(model_id)} (models: {known})\n{USAGE[action]}",
                             parse_mode=None)
        return
    others = [m for m in registry.enabled() if m.id != model_id]
    if action in ("rmmodel", "disable") and not others:
        await message.answer("⚠️ that is the last enabled model; add another first",
                             parse_mode=None)
        return
    overrides = {o.model_id: o for o in await admin.overrides()}
    stored = overrides.get(model_id)
    spec_json = stored.spec if stored else None
    if action == "rmmodel":
        # The stored entry stays (a removed model is not served either way): dumps keep
        # honouring the export policy of its answers still in the database.
        await admin.save_override(model_id, actor_id=db_user.id, action=action, spec=None,
                                  enabled=False, removed=True)
        client = pool_client(model_sync, settings)
        if spec.ray_serve is not None:
            # Deployed on Ray Serve: its app goes (the others stay, see inference/ray).
            problem = await remove_from_ray(model_id, spec.ray_serve.app, model_sync, settings)
            if problem:
                await message.answer(t("ray-remove-failed", admin_lang(db_user),
                                       app=spec.ray_serve.app, reason=problem), parse_mode=None)
        elif spec.speculative is not None and spec.backend == "vllm" and client is not None:
            # Launched in the pool: the agents stop its servers and free the GPUs.
            await client.stop(model_id)
    else:
        await admin.save_override(model_id, actor_id=db_user.id, action=action, spec=spec_json,
                                  enabled=action == "enable")
    moved = await admin.move_users_off(model_id) if action != "enable" else []
    await model_sync.changed()
    if moved:
        task = asyncio.create_task(_tell_moved(message.bot, moved, spec.title, registry))  # type: ignore[arg-type]
        _background.add(task)
        task.add_done_callback(_background.discard)
    done = {"rmmodel": "removed", "enable": "enabled", "disable": "disabled"}[action]
    note = f"; {len(moved)} user(s) moved to the default model" if moved else ""
    await message.answer(f"✅ {spec.title} ({model_id}) {done}{note}", parse_mode=None)


async def remove_model(message: Message, command: CommandObject, db_user: User,
                       registry: ModelRegistry, admin: AdminRepository,
                       model_sync: ModelSync, settings: Settings) -> None:
    await _set_state(message, command, "rmmodel", db_user, registry, admin, model_sync,
                     settings)


async def enable_model(message: Message, command: CommandObject, db_user: User,
                       registry: ModelRegistry, admin: AdminRepository,
                       model_sync: ModelSync, settings: Settings) -> None:
    await _set_state(message, command, "enable", db_user, registry, admin, model_sync,
                     settings)


async def disable_model(message: Message, command: CommandObject, db_user: User,
                        registry: ModelRegistry, admin: AdminRepository,
                        model_sync: ModelSync, settings: Settings) -> None:
    await _set_state(message, command, "disable", db_user, registry, admin, model_sync,
                     settings)


async def list_models(message: Message, registry: ModelRegistry) -> None:
    for part in models_report(registry):
        await message.answer(part, parse_mode=None)


def build_router() -> Router:
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.message.register(add_model, Command("addmodel"))
    router.message.register(remove_model, Command("rmmodel"))
    router.message.register(enable_model, Command("enable"))
    router.message.register(disable_model, Command("disable"))
    router.message.register(list_models, Command("models"))
    return router
