"""per-chat system prompts, personas and models; per-user language and generation settings;
reasoning, attachments and persona of messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("lang", sa.String(16), nullable=True))
        batch.add_column(sa.Column("gen_settings", JSONType, nullable=True))
    with op.batch_alter_table("chat") as batch:
        batch.add_column(sa.Column("system_prompt", sa.Text(), nullable=True))
        batch.add_column(sa.Column("persona_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("model_id", sa.String(40), nullable=True))
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("reasoning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attachments", JSONType, nullable=True))
        batch.add_column(sa.Column("persona_id", sa.String(40), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): recreating a table in SQLite would
    # cascade-delete the rows that reference it.
    with op.batch_alter_table("message", recreate="never") as batch:
        for column in ("persona_id", "attachments", "reasoning"):
            batch.drop_column(column)
    with op.batch_alter_table("chat", recreate="never") as batch:
        for column in ("model_id", "persona_id", "system_prompt"):
            batch.drop_column(column)
    with op.batch_alter_table("user_account", recreate="never") as batch:
        for column in ("gen_settings", "lang"):
            batch.drop_column(column)
