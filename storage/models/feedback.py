"""Judgements, each tied to stored answers: votes, edits and arena battles."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, BigId, CreatedAt

WINNERS = ("a", "b", "tie", "both_bad")
# Llama 3's preference-strength scale.
STRENGTHS = ("much_better", "better", "slightly_better", "about_same")


class Vote(CreatedAt, Base):
    """👍 (+1) or 👎 (-1) by one user on one answer; pressing again changes or removes it."""

    __tablename__ = "vote"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "user_id"),
        sa.CheckConstraint("value IN (-1, 1)", name="value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(sa.ForeignKey("chat.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(sa.SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), onupdate=sa.func.now()
    )


class AnswerEdit(CreatedAt, Base):
    """A user's improved version of an answer: edited (chosen) › original (rejected)."""

    __tablename__ = "answer_edit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    original_id: Mapped[int] = mapped_column(
        sa.ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    edited_id: Mapped[int] = mapped_column(
        sa.ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(sa.ForeignKey("chat.id", ondelete="CASCADE"))


class Battle(CreatedAt, Base):
    """Two models' answers to one prompt, judged by the user who asked."""

    __tablename__ = "battle"
    __table_args__ = (
        sa.CheckConstraint(
            "winner IS NULL OR winner IN ('a', 'b', 'tie', 'both_bad')", name="winner"
        ),
        sa.CheckConstraint(
            "strength IS NULL OR strength IN "
            "('much_better', 'better', 'slightly_better', 'about_same')",
            name="strength",
        ),
        sa.CheckConstraint("model_a <> model_b", name="distinct_models"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(sa.ForeignKey("chat.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    prompt_id: Mapped[int] = mapped_column(sa.ForeignKey("message.id", ondelete="CASCADE"))
    answer_a_id: Mapped[int] = mapped_column(sa.ForeignKey("message.id", ondelete="CASCADE"))
    answer_b_id: Mapped[int] = mapped_column(sa.ForeignKey("message.id", ondelete="CASCADE"))
    model_a: Mapped[str] = mapped_column(sa.String(40))
    model_b: Mapped[str] = mapped_column(sa.String(40))
    anonymous: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    winner: Mapped[str | None] = mapped_column(sa.String(16))
    strength: Mapped[str | None] = mapped_column(sa.String(16))
    voted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
