"""`/addmodel id hf=… draft=…`: ask the pool agents to launch a target + draft pair on GPUs,
report progress in one message, and register the model once a replica is ready."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import Message

from bot.model_sync import ModelSync
from bot.settings import Settings
from storage.models import User
from storage.repositories.admin import AdminRepository

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT = 1800.0  # first start downloads weights; minutes are normal


async def launch_in_pool(message: Message, bot: Bot, model_id: str,
                         options: dict[str, str | int], db_user: User, admin: AdminRepository,
                         model_sync: ModelSync, settings: Settings) -> None:
    from inference.pool.argv import LaunchRequest
    from inference.pool.client import PoolClient

    if model_sync.redis is None:
        await message.answer("⚠️ launching on the GPU pool needs REDIS_URL and a running "
                             "`chatmux pool-agent`", parse_mode=None)
        return
    request = LaunchRequest(model_id=model_id, target=str(options["target"]),
                            draft=str(options["draft"]), k=int(options["k"]),
                            gpus=int(options["gpus"]))
    client = PoolClient(model_sync.redis, settings.redis_prefix)
    request_id = await client.launch(request)
    await admin.audit(db_user.id, "launch", model_id, {**options, "request_id": request_id})
    progress = await message.answer(f"🚀 {model_id}: launching {request.target} with draft "
                                    f"{request.draft} (k={request.k}, {request.gpus} GPU)…",
                                    parse_mode=None)
    async for event in client.events(request_id, wait=LAUNCH_TIMEOUT):
        state = event.get("state")
        where = f"{event.get('host', '?')}:{str(event.get('base_url', '')).split(':')[-1]}"
        if state == "ready":
            spec = {
                "title": str(options.get("title") or model_id), "backend": "vllm",
                "base_url": event["base_url"], "model": request.served_name,
                "speculative": {"method": "draft_model", "draft": request.draft,
                                "num_speculative_tokens": request.k},
            }
            await admin.save_override(model_id, actor_id=db_user.id, action="addmodel",
                                      spec=spec)
            await model_sync.changed()
            text = f"✅ {model_id}: ready on {event.get('host')} ({event['base_url']})"
        elif state == "failed":
            text = f"⚠️ {model_id}: launch failed — {event.get('detail', 'no detail')}"
        else:
            text = f"⏳ {model_id}: {state} on {where}… {event.get('detail', '')}".rstrip()
        await bot.edit_message_text(text, chat_id=progress.chat.id,
                                    message_id=progress.message_id, parse_mode=None)
        if state in ("ready", "failed"):
            return
    await bot.edit_message_text(f"⚠️ {model_id}: no pool agent reported back in time",
                                chat_id=progress.chat.id, message_id=progress.message_id,
                                parse_mode=None)
