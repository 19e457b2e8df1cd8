"""users' consent to their data going into dumps (/privacy)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("data_consent", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), see 0008.
    with op.batch_alter_table("user_account", recreate="never") as batch:
        for column in ("consent_at", "data_consent"):
            batch.drop_column(column)
