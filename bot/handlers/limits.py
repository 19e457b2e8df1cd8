"""/usage for everyone; /tier, /ban and /unban for admins (in their private chat, like the
other admin commands: for anyone else they do not exist). Every change is in the audit log."""

from __future__ import annotations

import math
import re

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.cleaning import clean_text
from bot.handlers.admin import IsAdmin
from bot.limits import Limits
from bot.quota_window import duration
from bot.settings import Settings
from bot.texts import t
from inference.pool.argv import shown
from inference.registry import ModelRegistry
from storage.models import User

# A numeric Telegram id, or a username with or without its @.
USER_REF = re.compile(r"^(-?[0-9]{1,20}|@?[A-Za-z0-9_]{3,32})$")
REASON_MAX = 200


async def usage(message: Message, db_user: User, lang: str, limits: Limits,
                registry: ModelRegistry, settings: Settings) -> None:
    if limits.exempt(db_user.telegram_id):
        await message.answer(t("usage_admin", lang), parse_mode=None)
        return
    lines = [t("usage_title", lang, tier=db_user.tier)]
    models = registry.enabled()
    statuses = {s.spec.id: s for s in await limits.statuses(db_user, models)}
    now = limits.clock()
    for spec in models:
        status = statuses.get(spec.id)
        if status is None:
            lines.append(t("usage_unlimited", lang, model=spec.title))
            continue
        lines.append(t("usage_quota", lang, model=spec.title, left=status.left,
                       messages=status.quota.messages, per=status.quota.per,
                       reset=duration((status.resets_at - now).total_seconds(), lang)))
    if limits.rate_limited:
        state = await limits.rate_state(db_user.telegram_id)
        lines.append(t("usage_rate", lang, ready=math.floor(state.tokens),
                       burst=settings.rate_limit_burst,
                       every=duration(60 / settings.rate_limit_per_minute, lang)))
    else:
        lines.append(t("usage_rate_off", lang))
    await message.answer("\n".join(lines), parse_mode=None)


def _name(user: User) -> str:
    return f"@{user.username}" if user.username else str(user.telegram_id)


async def _target(message: Message, ref: str, command: str, lang: str,
                  limits: Limits) -> User | None:
    """The user `ref` names, or None after saying what is wrong in one line."""
    if not USER_REF.match(ref):
        await message.answer(t("admin_limits_usage", lang, command=command), parse_mode=None)
        return None
    user = await limits.repo.find_user(ref)
    if user is None:
        await message.answer(t("admin_user_unknown", lang, user=shown(ref)), parse_mode=None)
    return user


async def set_tier(message: Message, command: CommandObject, db_user: User, lang: str,
                   limits: Limits, registry: ModelRegistry) -> None:
    words = (command.args or "").split()
    tiers = registry.tiers
    if len(words) != 2:
        await message.answer(t("admin_tier_usage", lang, tiers=", ".join(tiers)),
                             parse_mode=None)
        return
    ref, tier = words
    if tier not in tiers:
        await message.answer(t("admin_tier_unknown", lang, tier=shown(tier),
                               tiers=", ".join(tiers)), parse_mode=None)
        return
    user = await _target(message, ref, "tier", lang, limits)
    if user is None:
        return
    await limits.repo.set_tier(user, tier, actor_id=db_user.id)
    await message.answer(t("admin_tier_set", lang, user=_name(user), tier=tier),
                         parse_mode=None)


async def ban(message: Message, command: CommandObject, db_user: User, lang: str,
              limits: Limits) -> None:
    ref, _, reason = (command.args or "").strip().partition(" ")
    if not ref:
        await message.answer(t("admin_limits_usage", lang, command="ban"), parse_mode=None)
        return
    user = await _target(message, ref, "ban", lang, limits)
    if user is None:
        return
    if limits.exempt(user.telegram_id):
        await message.answer(t("admin_ban_admin", lang), parse_mode=None)
        return
    reason = clean_text(reason).strip()[:REASON_MAX] or None
    await limits.repo.ban(user, reason, actor_id=db_user.id)
    limits.banned_now(user.telegram_id, True)
    await message.answer(t("admin_banned", lang, user=_name(user)), parse_mode=None)


async def unban(message: Message, command: CommandObject, db_user: User, lang: str,
                limits: Limits) -> None:
    words = (command.args or "").split()
    if len(words) != 1:
        await message.answer(t("admin_limits_usage", lang, command="unban"), parse_mode=None)
        return
    user = await _target(message, words[0], "unban", lang, limits)
    if user is None:
        return
    if user.banned_at is None:
        await message.answer(t("admin_not_banned", lang, user=_name(user)), parse_mode=None)
        return
    await limits.repo.unban(user, actor_id=db_user.id)
    limits.banned_now(user.telegram_id, False)
    await message.answer(t("admin_unbanned", lang, user=_name(user)), parse_mode=None)


def build_router() -> Router:
    router = Router(name="limits")
    router.message.register(usage, Command("usage"))
    router.message.register(set_tier, Command("tier"), IsAdmin())
    router.message.register(ban, Command("ban"), IsAdmin())
    router.message.register(unban, Command("unban"), IsAdmin())
    return router
