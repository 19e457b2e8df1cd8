"""Admin-managed models and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.db import dialect_insert
from storage.models import AuditEntry, ModelOverride, User


class AdminRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def overrides(self) -> list[ModelOverride]:
        async with self._sessionmaker() as session:
            return list(await session.scalars(sa.select(ModelOverride)))

    async def save_override(self, model_id: str, *, actor_id: int | None, action: str,
                            spec: dict[str, Any] | None = None, keep_spec: bool = True,
                            enabled: bool = True, removed: bool = False) -> None:
        """Upsert the override and write the audit entry in one transaction."""
        async with self._sessionmaker.begin() as session:
            values = {"model_id": model_id, "spec": spec, "enabled": enabled,
                      "removed": removed}
            update = {"enabled": enabled, "removed": removed, "updated_at": sa.func.now()}
            if not keep_spec or spec is not None:
                update["spec"] = spec
            insert = dialect_insert(session)(ModelOverride).values(**values)
            await session.execute(
                insert.on_conflict_do_update(index_elements=["model_id"], set_=update)
            )
            session.add(AuditEntry(actor_id=actor_id, action=action, target=model_id,
                                   detail={k: v for k, v in values.items() if k != "model_id"}))

    async def audit(self, actor_id: int | None, action: str, target: str | None,
                    detail: dict[str, Any] | None = None) -> None:
        async with self._sessionmaker.begin() as session:
            session.add(AuditEntry(actor_id=actor_id, action=action, target=target,
                                   detail=detail))

    async def move_users_off(self, model_id: str) -> list[tuple[int, str | None]]:
        """Users whose chosen model is gone fall back to the default.

        Returns their (Telegram id, language code), to tell them."""
        async with self._sessionmaker.begin() as session:
            result = await session.execute(
                sa.update(User)
                .where(User.model_id == model_id)
                .values(model_id=None)
                .returning(User.telegram_id, User.language_code)
            )
            return [(row[0], row[1]) for row in result.all()]
