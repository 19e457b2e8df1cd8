"""Models added or changed by admins at run time, and the audit trail of admin actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, BigId, CreatedAt, JSONType


class ModelOverride(CreatedAt, Base):
    """An admin's word on one model id; it wins over the catalogue file.

    `spec` is a full catalogue entry for a model added in chat (None: the file's entry is kept
    and only `enabled` / `removed` apply). API keys are never here, only env var names.
    """

    __tablename__ = "model_override"

    model_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    removed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), onupdate=sa.func.now()
    )


class AuditEntry(CreatedAt, Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(sa.String(32))
    target: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
