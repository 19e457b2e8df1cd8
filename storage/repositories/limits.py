"""Quota usage, user tiers and bans.

Quota usage is counted from the stored answers themselves (assistant messages under the
user's questions, per model, since the window began) rather than kept in Redis counters:
the count is exact, needs no Redis, survives restarts and Redis outages, is the same in every
bot process (they share the database), and cannot drift from what was really answered (an
answer that failed before any text, or was never delivered, does not count). The cost is one
indexed query when a question is accepted (`ix_message_author_created`), and only for users
of models that have a quota.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased

from storage.models import UNSHOWN_STATUSES, AuditEntry, Message, User

_answer = aliased(Message)
_question = aliased(Message)


class LimitsRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def answers_since(self, user_id: int, model_ids: Iterable[str],
                            since: datetime) -> dict[str, int]:
        """Answers the user was given by each of `model_ids` since `since` (regenerations
        and arena sides included; answers never shown excluded)."""
        wanted = list(model_ids)
        if not wanted:
            return {}
        query = (
            sa.select(_answer.model_id, sa.func.count())
            .join(_question, _answer.parent_id == _question.id)
            .where(_question.author_id == user_id, _answer.role == "assistant",
                   _answer.model_id.in_(wanted), _answer.created_at >= since,
                   _answer.status.not_in(UNSHOWN_STATUSES))
            .group_by(_answer.model_id)
        )
        async with self._sessionmaker() as session:
            return {model_id: count for model_id, count in (await session.execute(query)).all()}

    async def find_user(self, ref: str) -> User | None:
        """A user the bot knows by numeric Telegram id (ASCII digits) or @username
        (case-insensitive)."""
        digits = ref.removeprefix("-")
        if digits.isascii() and digits.isdigit():
            telegram_id = int(ref)
            if not -(2**63) <= telegram_id < 2**63:  # beyond BIGINT: no one has that id
                return None
            condition = User.telegram_id == telegram_id
        else:
            condition = sa.func.lower(User.username) == ref.removeprefix("@").lower()
        async with self._sessionmaker() as session:
            return (await session.scalars(sa.select(User).where(condition).limit(1))).first()

    async def _set(self, user_id: int, actor_id: int | None, action: str, target: str,
                   values: dict[str, object], detail: dict[str, object] | None = None) -> None:
        """Change the user and write the audit entry in one transaction."""
        async with self._sessionmaker.begin() as session:
            await session.execute(sa.update(User).where(User.id == user_id).values(**values))
            session.add(AuditEntry(actor_id=actor_id, action=action, target=target,
                                   detail=detail))

    async def set_tier(self, user: User, tier: str, *, actor_id: int | None) -> None:
        await self._set(user.id, actor_id, "tier", str(user.telegram_id), {"tier": tier},
                        {"tier": tier, "was": user.tier})

    async def ban(self, user: User, reason: str | None, *, actor_id: int | None) -> None:
        await self._set(user.id, actor_id, "ban", str(user.telegram_id),
                        {"banned_at": sa.func.now(), "ban_reason": reason},
                        {"reason": reason} if reason else None)

    async def unban(self, user: User, *, actor_id: int | None) -> None:
        await self._set(user.id, actor_id, "unban", str(user.telegram_id),
                        {"banned_at": None, "ban_reason": None})

    async def banned_ids(self) -> frozenset[int]:
        """Telegram ids of banned users."""
        async with self._sessionmaker() as session:
            found = await session.scalars(
                sa.select(User.telegram_id).where(User.banned_at.is_not(None)))
            return frozenset(found)
