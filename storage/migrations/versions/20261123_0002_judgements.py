"""judgements: votes, answer edits, arena battles; message origin, per-user arena mode

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:00:25.095328
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "answer_edit",
        sa.Column("id", BigId, nullable=False),
        sa.Column("original_id", BigId, nullable=False),
        sa.Column("edited_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("chat_id", BigId, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_answer_edit_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["edited_id"],
            ["message.id"],
            name=op.f("fk_answer_edit_edited_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["original_id"],
            ["message.id"],
            name=op.f("fk_answer_edit_original_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_answer_edit_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_edit")),
        sa.UniqueConstraint("edited_id", name=op.f("uq_answer_edit_edited_id")),
    )
    op.create_index(
        op.f("ix_answer_edit_original_id"), "answer_edit", ["original_id"], unique=False
    )
    op.create_table(
        "battle",
        sa.Column("id", BigId, nullable=False),
        sa.Column("chat_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("prompt_id", BigId, nullable=False),
        sa.Column("answer_a_id", BigId, nullable=False),
        sa.Column("answer_b_id", BigId, nullable=False),
        sa.Column("model_a", sa.String(length=40), nullable=False),
        sa.Column("model_b", sa.String(length=40), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("winner", sa.String(length=16), nullable=True),
        sa.Column("strength", sa.String(length=16), nullable=True),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "strength IS NULL OR strength IN "
            "('much_better', 'better', 'slightly_better', 'about_same')",
            name=op.f("ck_battle_strength"),
        ),
        sa.CheckConstraint(
            "winner IS NULL OR winner IN ('a', 'b', 'tie', 'both_bad')",
            name=op.f("ck_battle_winner"),
        ),
        sa.CheckConstraint("model_a <> model_b", name=op.f("ck_battle_distinct_models")),
        sa.ForeignKeyConstraint(
            ["answer_a_id"],
            ["message.id"],
            name=op.f("fk_battle_answer_a_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answer_b_id"],
            ["message.id"],
            name=op.f("fk_battle_answer_b_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_battle_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["message.id"],
            name=op.f("fk_battle_prompt_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_battle_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_battle")),
    )
    op.create_index(op.f("ix_battle_user_id"), "battle", ["user_id"], unique=False)
    op.create_table(
        "vote",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("chat_id", BigId, nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("value IN (-1, 1)", name=op.f("ck_vote_value")),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_vote_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_vote_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_vote_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vote")),
        sa.UniqueConstraint("message_id", "user_id", name=op.f("uq_vote_message_id")),
    )
    op.create_index(op.f("ix_vote_message_id"), "vote", ["message_id"], unique=False)
    op.create_index(op.f("ix_vote_user_id"), "vote", ["user_id"], unique=False)
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=16), server_default="original", nullable=False)
        )
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("arena_mode", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("arena_mode")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("origin")
    op.drop_index(op.f("ix_vote_user_id"), table_name="vote")
    op.drop_index(op.f("ix_vote_message_id"), table_name="vote")
    op.drop_table("vote")
    op.drop_index(op.f("ix_battle_user_id"), table_name="battle")
    op.drop_table("battle")
    op.drop_index(op.f("ix_answer_edit_original_id"), table_name="answer_edit")
    op.drop_table("answer_edit")
