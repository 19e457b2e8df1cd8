"""`/addmodel id hf=… draft=…`: ask the pool agents to launch a target + draft pair on GPUs,
report progress in one message, and register the model once a replica is ready.

Only signed events count (see :mod:`inference.pool.protocol`), and of those only the ones
from the agent that claimed the launch; its "ready" address must be on that agent's
registered host.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.types import Message

from bot.model_sync import ModelSync
from bot.settings import Settings
from inference.pool.argv import LaunchRequest
from inference.pool.client import PoolClient
from inference.pool.protocol import PoolAuth
from storage.models import User
from storage.repositories.admin import AdminRepository

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT = 1800.0  # first start downloads weights; minutes are normal
CLAIM_TIMEOUT = 20.0  # an agent takes a launch within seconds; none by then: say so
AGENT_FRESH = 30.0  # agents beat every 10 s: one silent for longer is not counted


def pool_client(model_sync: ModelSync, settings: Settings) -> PoolClient | None:
    """The client of the GPU pool, or None without Redis or POOL_SECRET."""
    if model_sync.redis is None or settings.pool_secret is None:
        return None
    auth = PoolAuth(settings.pool_secret.get_secret_value())
    return PoolClient(model_sync.redis, settings.redis_prefix, auth)


def _capacity(agent: dict[str, Any]) -> int:
    """The most GPUs one server may take on an agent (1 on a CPU host)."""
    value = agent.get("max_tensor_parallel")
    return value if isinstance(value, int) else len(agent.get("gpus") or [])


def ready_address_problem(base_url: object, agent: dict[str, Any] | None) -> str | None:
    """Why a "ready" base URL is not one the claiming agent may report (None if it is)."""
    if agent is None:
        return "the agent that claimed the launch is no longer registered"
    host = agent.get("advertise_host")
    if not isinstance(base_url, str) or not isinstance(host, str):
        return "the agent registered no address"
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return f"{base_url!r} is not a URL"
    if (parts.scheme != "http" or (parts.hostname or "") != host.lower() or port is None
            or parts.path != "/v1" or parts.username or parts.query):
        return f"{base_url} is not on {agent.get('host')}'s registered address {host}"
    return None


async def launch_in_pool(message: Message, bot: Bot, request: LaunchRequest, title: str,
                         db_user: User, admin: AdminRepository, model_sync: ModelSync,
                         settings: Settings, export_policy: dict[str, Any] | None = None
                         ) -> None:
    model_id = request.model_id
    client = pool_client(model_sync, settings)
    if client is None:
        await message.answer("⚠️ launching on the GPU pool needs REDIS_URL, POOL_SECRET and a "
                             "running `chatmux pool-agent`; nothing launched", parse_mode=None)
        return
    agents = await client.agents(max_age=AGENT_FRESH)
    if not agents:
        await message.answer(f"⚠️ no pool agent is running (none reported in the last "
                             f"{AGENT_FRESH:.0f} s): start `chatmux pool-agent` on a GPU host "
                             "with this bot's REDIS_URL and POOL_SECRET; nothing launched",
                             parse_mode=None)
        return
    biggest = max(agents, key=_capacity)
    if request.gpus > _capacity(biggest):
        await message.answer(f"⚠️ gpus={request.gpus}: no pool agent gives one server that many "
                             f"(the most is {_capacity(biggest)}, on {biggest.get('host')}); "
                             "nothing launched", parse_mode=None)
        return
    request_id = await client.launch(request)
    await admin.audit(db_user.id, "launch", model_id,
                      {**request.to_dict(), "title": title, "request_id": request_id})
    progress = await message.answer(f"🚀 {model_id}: launching {request.target} with draft "
                                    f"{request.draft} (k={request.k}, {request.gpus} GPU)…",
                                    parse_mode=None)

    async def show(text: str) -> None:
        await bot.edit_message_text(text, chat_id=progress.chat.id,
                                    message_id=progress.message_id, parse_mode=None)

    claimant: str | None = None
    async for event in client.events(request_id, LAUNCH_TIMEOUT, first_within=CLAIM_TIMEOUT,
                                     claimant_only=True):
        claimant, state = str(event.get("host")), event.get("state")
        if state == "ready":
            live = {a.get("host"): a for a in await client.agents()}
            problem = ready_address_problem(event.get("base_url"), live.get(claimant))
            if problem:
                log.warning("pool: refused the ready event of %s: %s", request_id, problem)
                await client.stop(model_id)  # no server of a model nobody can use
                await show(f"⚠️ {model_id}: {claimant} reported ready, but {problem}; "
                           "not added, and its server is being stopped")
                return
            spec = {
                "title": title, "backend": "vllm",
                "base_url": event["base_url"], "model": request.served_name,
                "speculative": {"method": "draft_model", "draft": request.draft,
                                "num_speculative_tokens": request.k},
            }
            spec |= export_policy or {}  # exportable=, data_license= (see admin_args)
            await admin.save_override(model_id, actor_id=db_user.id, action="addmodel",
                                      spec=spec)
            await model_sync.changed()
            await show(f"✅ {model_id}: ready on {claimant} ({event['base_url']})")
            return
        if state == "failed":
            await show(f"⚠️ {model_id}: launch failed — {event.get('detail', 'no detail')}")
            return
        port = str(event.get("base_url", "")).split(":")[-1]
        await show(f"⏳ {model_id}: {state} on {claimant}:{port}… "
                   f"{event.get('detail', '')}".rstrip())
    if claimant is None:
        hosts = ", ".join(sorted(str(a.get("host")) for a in agents))
        await show(f"⚠️ {model_id}: no pool agent took the launch within "
                   f"{CLAIM_TIMEOUT:.0f} s (running: {hosts}); nothing added")
    else:
        await show(f"⚠️ {model_id}: {claimant} did not report the server ready in time")
