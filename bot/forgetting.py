""""Forget me" across processes: the user's answers being written are stopped, their rows are
deleted (`PrivacyRepository.forget`, one transaction), then what shared state (Redis, or this
process's stand-ins) holds of them is dropped: queued questions, the edited texts waiting for
"Answer the edited version", ✏️ edit mode (FSM), their rate-limit buckets.

Left to expire by themselves (never holding content): a conversation lock of their private
chat (`gen:<chat id>`, while a stopped answer ends, at most LOCK_TTL), duplicate-press guards
(`tap:…`, 1.5 s), and a press bucket a later press re-creates (full again within seconds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram.fsm.storage.base import BaseStorage, StorageKey

from bot.queueing import Queued
from bot.streaming.stops import StopSignals
from storage.question_queue import QueueStore
from storage.repositories.privacy import Forgotten, PrivacyRepository
from storage.shared_state import SharedState
from storage.token_bucket import TokenBuckets

log = logging.getLogger(__name__)


@dataclass
class Forgetting:
    """One per process; handlers receive it from the Dispatcher as `forgetting`."""

    privacy: PrivacyRepository
    stops: StopSignals
    queues: QueueStore
    buckets: TokenBuckets
    state: SharedState
    fsm: BaseStorage

    async def forget(self, bot_id: int, telegram_id: int) -> Forgotten | None:
        """Forget the person; None if nothing of theirs was stored (already forgotten)."""
        # Their answers being written are stopped once their messages are locked: ending,
        # they find their question gone and store nothing (`QuestionGone`).
        forgotten = await self.privacy.forget(telegram_id, locked=self.stops.stop_asker)
        if forgotten is None:  # not stored (already forgotten, or a second press was first)
            return None
        await self.clear_shared(bot_id, telegram_id, forgotten)
        return forgotten

    async def clear_shared(self, bot_id: int, telegram_id: int, forgotten: Forgotten) -> None:
        """Drop what shared state holds of the person (best effort: Redis being unreachable
        leaves keys that expire by themselves)."""
        for name in await self.queues.names():
            if name.partition(":")[0] == str(telegram_id):  # their private chat (or a topic)
                await self.queues.drop(name)
                continue
            theirs = [raw for raw in await self.queues.waiting(name)
                      if _asked_by(raw, forgotten.user_id)]
            await self.queues.remove(name, theirs)
        await self.queues.drop_stashes([f"edit:{i}" for i in forgotten.message_ids])
        for kind in ("ask", "press"):
            await self.buckets.drop(f"{kind}:{telegram_id}")
        await self.state.unclaim(f"limit-told:{telegram_id}")
        places = {(telegram_id, None), *forgotten.places}
        for chat_id, thread_id in places:
            key = StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=telegram_id,
                             thread_id=thread_id)
            await self.fsm.set_state(key, None)  # ResilientStorage: an outage is logged
            await self.fsm.set_data(key, {})


def _asked_by(raw: str, user_id: int) -> bool:
    try:
        return Queued.loads(raw).user_id == user_id
    except (ValueError, TypeError):
        return False
