"""Users, chats, conversations and the message tree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, BigId, CreatedAt, JSONType

# Answers the user never saw as text: the model failed before any text (error), it answered
# nothing but whitespace (empty), or Telegram would not take it (undelivered). They are kept
# (what happened is data too) but are never a conversation's head, never sent back to a model
# as history, never rated and never exported.
UNSHOWN_STATUSES = ("error", "empty", "undelivered")


class User(CreatedAt, Base):
    """A person who talks to the bot, or a chat writing on its own behalf (an anonymous group
    admin, a channel): then `telegram_id` is the chat's (negative) id and no name is stored."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    first_name: Mapped[str | None] = mapped_column(sa.String(128))
    language_code: Mapped[str | None] = mapped_column(sa.String(16))
    model_id: Mapped[str | None] = mapped_column(sa.String(40))
    # None: follow the catalogue's arena default; True/False: the user's /arena choice.
    arena_mode: Mapped[bool | None] = mapped_column(sa.Boolean)
    # The language chosen with /lang (None: the Telegram client's).
    lang: Mapped[str | None] = mapped_column(sa.String(16))
    # /settings: the user's generation parameters (temperature, top_p, max_tokens), each
    # clamped to the answering model's bounds when used; None: the models' defaults.
    gen_settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Set by admins: /tier (which quotas apply, see the catalogue's `tiers`) and /ban (a
    # banned user gets no answers and cannot vote; the reason is for admins only).
    tier: Mapped[str] = mapped_column(sa.String(32), default="standard",
                                      server_default="standard")
    banned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ban_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # /privacy: None follows the DATA_CONSENT default; False opted out of dumps, True opted
    # in. Dumps read it when they run, so a choice covers everything the user wrote before.
    data_consent: Mapped[bool | None] = mapped_column(sa.Boolean)
    consent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), onupdate=sa.func.now()
    )

    @property
    def is_chat(self) -> bool:
        """A chat, not a person (Telegram user ids are positive, chat ids negative)."""
        return self.telegram_id < 0


class Chat(CreatedAt, Base):
    __tablename__ = "chat"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[str | None] = mapped_column(sa.String(256))
    # /system and /persona for this chat (in groups set by chat admins only), and a group's
    # model (/model by a chat admin); None: the model's default prompt, the asker's model.
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    persona_id: Mapped[str | None] = mapped_column(sa.String(40))
    model_id: Mapped[str | None] = mapped_column(sa.String(40))


class Conversation(CreatedAt, Base):
    """A thread of messages in a chat, or in one topic of it (forum supergroups and private
    chats can have topics). At most one open (closed_at IS NULL) per chat and topic."""

    __tablename__ = "conversation"
    __table_args__ = (
        sa.Index(
            "uq_conversation_open_per_thread",
            "chat_id",
            "thread_id",
            unique=True,
            postgresql_where=sa.text("closed_at IS NULL"),
            sqlite_where=sa.text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(sa.ForeignKey("chat.id", ondelete="CASCADE"), index=True)
    # The topic's message_thread_id; 0 for the chat itself (no topics, or a forum's General).
    thread_id: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    started_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # The message the next turn continues from; the history is the path from it to the root.
    head_message_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("message.id", ondelete="SET NULL", use_alter=True)
    )
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Message(CreatedAt, Base):
    """A node of the conversation tree: siblings share a parent (regenerations, edits)."""

    __tablename__ = "message"
    # Quotas count a user's answers per model in a window (storage/repositories/limits.py).
    __table_args__ = (sa.Index("ix_message_author_created", "author_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16))  # user | assistant
    # original | regenerated (a new sibling answer) | edited (written by a user) | arena
    origin: Mapped[str] = mapped_column(
        sa.String(16), default="original", server_default="original"
    )
    author_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    content: Mapped[str] = mapped_column(sa.Text, default="")
    # complete | cut (error after text reached the user) | stopped (by the user)
    # | interrupted (by the bot stopping: shown like stopped) | error | empty | undelivered
    # (see UNSHOWN_STATUSES)
    status: Mapped[str] = mapped_column(sa.String(16), default="complete")
    error_kind: Mapped[str | None] = mapped_column(sa.String(32))
    # What produced an assistant message, enough to rebuild the exact request.
    model_id: Mapped[str | None] = mapped_column(sa.String(40))
    served_model: Mapped[str | None] = mapped_column(sa.String(200))
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    prompt_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    completion_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    ttft_ms: Mapped[int | None] = mapped_column(sa.Integer)
    total_ms: Mapped[int | None] = mapped_column(sa.Integer)
    finish_reason: Mapped[str | None] = mapped_column(sa.String(32))
    # Local engine: tokens drafted/accepted, target passes, tokens/s (see DecodingStats).
    decoding: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # How many of the earliest history messages (the path as sent: answers the user never
    # saw skipped, runs of one role merged) were left out to fit the model's context window;
    # None: nothing was left out.
    context_dropped: Mapped[int | None] = mapped_column(sa.Integer)
    # An answer's reasoning (thinking) text, kept apart from its content: shown collapsed,
    # never sent back to a model, never exported as the answer.
    reasoning: Mapped[str | None] = mapped_column(sa.Text)
    # What came with a user message besides text: images and voice, by Telegram file_id and
    # metadata, never the bytes ([{"kind": "image", "file_id": …, "width": …}, …]).
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # The persona whose prompt an answer was written under (its text is in system_prompt).
    persona_id: Mapped[str | None] = mapped_column(sa.String(40))


class MessageDelivery(Base):
    """A Telegram message a stored message was received as or delivered in (one per part)."""

    __tablename__ = "message_delivery"
    __table_args__ = (sa.UniqueConstraint("tg_chat_id", "tg_message_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    tg_chat_id: Mapped[int] = mapped_column(sa.BigInteger)
    tg_message_id: Mapped[int] = mapped_column(sa.BigInteger)
    part: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
