"""user tiers and bans; an index for counting a user's answers (quotas)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("tier", sa.String(32), nullable=False,
                                   server_default="standard"))
        batch.add_column(sa.Column("banned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ban_reason", sa.String(200), nullable=True))
    op.create_index("ix_message_author_created", "message", ["author_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_message_author_created", table_name="message")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): recreating a table in SQLite would
    # cascade-delete the rows that reference it.
    with op.batch_alter_table("user_account", recreate="never") as batch:
        for column in ("ban_reason", "banned_at", "tier"):
            batch.drop_column(column)
