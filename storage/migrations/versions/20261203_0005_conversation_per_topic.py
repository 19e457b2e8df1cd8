"""conversation per topic: forum topics (and private-chat topics) are conversations of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(
            sa.Column("thread_id", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.drop_index("uq_conversation_open_per_chat", table_name="conversation")
    op.create_index(
        "uq_conversation_open_per_thread",
        "conversation",
        ["chat_id", "thread_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    # One open conversation per chat again: the topics' conversations are closed (their
    # messages stay), the chat's own (thread 0) remains open.
    op.execute(
        sa.text("UPDATE conversation SET closed_at = CURRENT_TIMESTAMP "
                "WHERE closed_at IS NULL AND thread_id <> 0")
    )
    op.drop_index("uq_conversation_open_per_thread", table_name="conversation")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("thread_id")
    op.create_index(
        "uq_conversation_open_per_chat",
        "conversation",
        ["chat_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
