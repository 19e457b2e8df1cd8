"""`/addmodel id hf=… draft=…` with `POOL=ray`: deploy the model as its own Ray Serve LLM
application, follow its status in one message, and route the model to Serve's proxy once it
runs (`<RAY_SERVE_URL>/<id>/v1`). A failed deploy is one line for the admin, and its app is
taken out again so Ray stops retrying it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.types import Message

from bot.model_sync import ModelSync
from bot.settings import Settings
from bot.texts import chosen_lang, lang_of, t
from inference.pool.argv import LaunchRequest
from inference.ray.app_config import Replicas, path_problem, route_prefix, serve_app
from inference.ray.dashboard import RayDashboard, RayServeError
from inference.ray.status import progress
from storage.models import User
from storage.repositories.admin import AdminRepository

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT = 1800.0  # a cold start downloads weights and compiles: minutes are normal
POLL_INTERVAL = 2.0


def ray_dashboard(model_sync: ModelSync, settings: Settings) -> RayDashboard | None:
    """The dashboard client with POOL=ray (None when the dashboard or proxy URL is missing).
    Bots sharing a Redis serialise their config changes with a lock in it."""
    if settings.pool != "ray" or not settings.ray_dashboard_url or not settings.ray_serve_url:
        return None
    return RayDashboard(settings.ray_dashboard_url, settings.ray_serve_url,
                        token=settings.ray_dashboard_token(), redis=model_sync.redis,
                        lock_name=f"{settings.redis_prefix}:ray:serve-config")


def admin_lang(user: User) -> str:
    return chosen_lang(user.lang, lang_of(user.language_code))


async def launch_on_ray(message: Message, bot: Bot, request: LaunchRequest, replicas: Replicas,
                        title: str, db_user: User, admin: AdminRepository,
                        model_sync: ModelSync, settings: Settings,
                        export_policy: dict[str, Any] | None = None) -> None:
    lang = admin_lang(db_user)
    model_id = request.model_id
    dashboard = ray_dashboard(model_sync, settings)
    if dashboard is None:
        await message.answer(t("ray-not-configured", lang), parse_mode=None)
        return
    problem = path_problem(request, settings.pool_models_dir)
    if problem:
        await message.answer(t("ray-refused", lang, model=model_id, reason=problem),
                             parse_mode=None)
        return
    config = serve_app(request, replicas, settings.ray_accelerator)
    try:
        await dashboard.put_app(config)
    except RayServeError as exc:
        await message.answer(t("ray-refused", lang, model=model_id, reason=str(exc)),
                             parse_mode=None)
        return
    await admin.audit(db_user.id, "launch", model_id,
                      {**request.to_dict(), "title": title, "pool": "ray",
                       "replicas": [replicas.low, replicas.high]})
    shown = f"{replicas.low}" if replicas.low == replicas.high else \
        f"{replicas.low}-{replicas.high}"
    first = t("ray-deploying-start", lang, model=model_id, target=request.target,
              draft=str(request.draft), k=request.k, gpus=request.gpus, replicas=shown)
    note = await message.answer(first, parse_mode=None)
    last_text = first

    async def show(text: str) -> None:
        nonlocal last_text
        if text != last_text:
            last_text = text
            await bot.edit_message_text(text, chat_id=note.chat.id, message_id=note.message_id,
                                        parse_mode=None)

    async def give_up(text: str) -> None:
        try:
            await dashboard.remove_app(model_id)
        except RayServeError as exc:
            log.warning("ray: could not remove the failed app %s: %s", model_id, exc)
            text += "\n" + t("ray-remove-failed", lang, app=model_id, reason=str(exc))
        await show(text)

    deadline = time.monotonic() + LAUNCH_TIMEOUT
    seen = False
    while time.monotonic() < deadline:
        try:
            state = progress(await dashboard.app(model_id))
        except RayServeError as exc:  # a dashboard restart: keep following until the deadline
            log.info("ray: status of %s unavailable: %s", model_id, exc)
            await asyncio.sleep(POLL_INTERVAL)
            continue
        if state.phase == "running":
            base_url = f"{dashboard.serve_url}{route_prefix(model_id)}/v1"
            spec = {
                "title": title, "backend": "vllm", "base_url": base_url,
                "model": request.served_name,
                # Serve LLM lists no max_model_len and has no /tokenize: the bot's own limit.
                **({"context_window": request.max_model_len} if request.max_model_len else {}),
                "speculative": {"method": "draft_model", "draft": request.draft,
                                "num_speculative_tokens": request.k},
                "ray_serve": {"app": model_id, "metrics_url": settings.ray_metrics_url},
            }
            spec |= export_policy or {}  # exportable=, data_license= (see admin_args)
            await admin.save_override(model_id, actor_id=db_user.id, action="addmodel",
                                      spec=spec)
            await model_sync.changed()
            await show(t("ray-ready", lang, model=model_id, url=base_url))
            return
        if state.phase == "failed":
            await give_up(t("ray-failed", lang, model=model_id, status=state.status,
                            detail=state.detail))
            return
        if state.phase == "missing" and seen:
            await show(t("ray-vanished", lang, model=model_id))
            return
        seen = seen or state.phase != "missing"
        if state.phase == "deploying":
            await show(t("ray-deploying", lang, model=model_id, status=state.status,
                         detail=state.detail or "…"))
        await asyncio.sleep(POLL_INTERVAL)
    await give_up(t("ray-timeout", lang, model=model_id, minutes=round(LAUNCH_TIMEOUT / 60)))


async def remove_from_ray(model_id: str, app: str, model_sync: ModelSync,
                          settings: Settings) -> str | None:
    """Take a model's Serve app out (read-modify-write); why not, as a line, or None."""
    dashboard = ray_dashboard(model_sync, settings)
    if dashboard is None:
        return "POOL=ray with RAY_DASHBOARD_URL and RAY_SERVE_URL is not configured"
    try:
        await dashboard.remove_app(app)
    except RayServeError as exc:
        log.warning("ray: could not remove the app of %s: %s", model_id, exc)
        return str(exc)
    return None
