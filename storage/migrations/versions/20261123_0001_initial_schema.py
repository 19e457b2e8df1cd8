"""initial schema: users, chats, conversations, the message tree and its deliveries

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "chat",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("title", sa.String(256)),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_chat_telegram_id")),
    )
    op.create_table(
        "user_account",
        sa.Column("id", BigId),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("first_name", sa.String(128)),
        sa.Column("language_code", sa.String(16)),
        sa.Column("model_id", sa.String(40)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_user_account_telegram_id")),
    )
    op.create_table(
        "conversation",
        sa.Column("id", BigId),
        sa.Column("chat_id", BigId, nullable=False),
        sa.Column("started_by_id", BigId),
        sa.Column("head_message_id", BigId),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_conversation_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["user_account.id"],
            name=op.f("fk_conversation_started_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation")),
    )
    op.create_index(op.f("ix_conversation_chat_id"), "conversation", ["chat_id"])
    op.create_index(
        "uq_conversation_open_per_chat",
        "conversation",
        ["chat_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "message",
        sa.Column("id", BigId),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("parent_id", BigId),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("author_id", BigId),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("model_id", sa.String(40)),
        sa.Column("served_model", sa.String(200)),
        sa.Column("system_prompt", sa.Text()),
        sa.Column("params", JSONType),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("ttft_ms", sa.Integer()),
        sa.Column("total_ms", sa.Integer()),
        sa.Column("finish_reason", sa.String(32)),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user_account.id"],
            name=op.f("fk_message_author_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_message_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["message.id"], name=op.f("fk_message_parent_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    op.create_index(op.f("ix_message_conversation_id"), "message", ["conversation_id"])
    op.create_index(op.f("ix_message_parent_id"), "message", ["parent_id"])
    with op.batch_alter_table("conversation") as batch:
        batch.create_foreign_key(
            op.f("fk_conversation_head_message_id_message"),
            "message",
            ["head_message_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "message_delivery",
        sa.Column("id", BigId),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("tg_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("tg_message_id", sa.BigInteger(), nullable=False),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_message_delivery_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_delivery")),
        sa.UniqueConstraint(
            "tg_chat_id", "tg_message_id", name=op.f("uq_message_delivery_tg_chat_id")
        ),
    )
    op.create_index(op.f("ix_message_delivery_message_id"), "message_delivery", ["message_id"])


def downgrade() -> None:
    op.drop_table("message_delivery")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_constraint(op.f("fk_conversation_head_message_id_message"), type_="foreignkey")
    op.drop_table("message")
    op.drop_table("conversation")
    op.drop_table("user_account")
    op.drop_table("chat")
