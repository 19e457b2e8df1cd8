"""Conversations and the message tree: what was said, by whom, and what produced each answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Conversation, Message, MessageDelivery


@dataclass(slots=True)
class AnswerRecord:
    """Everything about one generated answer that is stored with it."""

    content: str
    model_id: str
    served_model: str
    status: str = "complete"
    error_kind: str | None = None
    system_prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: int | None = None
    total_ms: int | None = None
    finish_reason: str | None = None
    decoding: dict[str, Any] | None = None  # assisted-decoding statistics (local engine)


async def set_head(
    session: AsyncSession, conversation_id: int, message_id: int,
    only_if_head: int | None = None,
) -> None:
    """Make `message_id` the message the conversation's next turn continues from."""
    stmt = sa.update(Conversation).where(Conversation.id == conversation_id)
    if only_if_head is not None:
        stmt = stmt.where(Conversation.head_message_id == only_if_head)
    await session.execute(stmt.values(head_message_id=message_id))


class AlreadyStored(Exception):
    """This Telegram message was stored before (Telegram delivered the update twice)."""


class ConversationRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def _open(self, session: AsyncSession, chat_row_id: int,
                    thread: int) -> Conversation | None:
        return await session.scalar(
            sa.select(Conversation).where(
                Conversation.chat_id == chat_row_id, Conversation.thread_id == thread,
                Conversation.closed_at.is_(None),
            )
        )

    async def active(self, chat_row_id: int, user_id: int,
                     thread_id: int | None = None) -> Conversation:
        """The open conversation of the chat (or of its topic `thread_id`), created on first
        use. Topics never share a conversation: each has its own history."""
        thread = thread_id or 0
        async with self._sessionmaker.begin() as session:
            found = await self._open(session, chat_row_id, thread)
            if found is not None:
                return found
        try:
            async with self._sessionmaker.begin() as session:
                conversation = Conversation(chat_id=chat_row_id, thread_id=thread,
                                            started_by_id=user_id)
                session.add(conversation)
            return conversation
        except IntegrityError:  # another update opened it first
            async with self._sessionmaker() as session:
                found = await self._open(session, chat_row_id, thread)
                assert found is not None
                return found

    async def close_active(self, chat_row_id: int, thread_id: int | None = None) -> bool:
        """Close the open conversation of the chat, or of its topic `thread_id` only."""
        async with self._sessionmaker.begin() as session:
            result = await session.execute(
                sa.update(Conversation)
                .where(Conversation.chat_id == chat_row_id,
                       Conversation.thread_id == (thread_id or 0),
                       Conversation.closed_at.is_(None))
                .values(closed_at=datetime.now(UTC))
            )
            return bool(result.rowcount)

    async def add_user_message(
        self, conversation_id: int, author_id: int, content: str,
        tg_chat_id: int, tg_message_id: int,
    ) -> Message:
        """Store the user's message as a child of the conversation's head, and make it the head."""
        try:
            return await self._add_user_message(
                conversation_id, author_id, content, tg_chat_id, tg_message_id
            )
        except IntegrityError as exc:
            raise AlreadyStored(f"{tg_chat_id}/{tg_message_id}") from exc

    async def _add_user_message(
        self, conversation_id: int, author_id: int, content: str,
        tg_chat_id: int, tg_message_id: int,
    ) -> Message:
        async with self._sessionmaker.begin() as session:
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            assert conversation is not None
            message = Message(
                conversation_id=conversation_id,
                parent_id=conversation.head_message_id,
                role="user",
                author_id=author_id,
                content=content,
                status="complete",
            )
            session.add(message)
            await session.flush()
            session.add(
                MessageDelivery(
                    message_id=message.id, tg_chat_id=tg_chat_id, tg_message_id=tg_message_id,
                    part=0,
                )
            )
            conversation.head_message_id = message.id
            return message

    async def add_answer(
        self, parent: Message, answer: AnswerRecord, *, origin: str = "original",
        head: str = "follow",
    ) -> Message:
        """Store an answer under `parent`.

        `head`: "follow" makes it the head if the parent was (a normal turn); "take" makes it
        the head unconditionally (a regenerated answer: the conversation continues from the
        newest sibling); "keep" leaves the head alone (arena's second answer). An answer that
        failed with no text never becomes the head.
        """
        async with self._sessionmaker.begin() as session:
            message = Message(
                conversation_id=parent.conversation_id,
                parent_id=parent.id,
                role="assistant",
                origin=origin,
                content=answer.content,
                status=answer.status,
                error_kind=answer.error_kind,
                model_id=answer.model_id,
                served_model=answer.served_model,
                system_prompt=answer.system_prompt,
                params=answer.params,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
                ttft_ms=answer.ttft_ms,
                total_ms=answer.total_ms,
                finish_reason=answer.finish_reason,
                decoding=answer.decoding,
            )
            session.add(message)
            await session.flush()
            if answer.content and head == "follow":
                # A question sent while this answer was being written was stored under the
                # same parent; in the chat it came after this answer, so it moves below it.
                await session.execute(
                    sa.update(Message)
                    .where(Message.parent_id == parent.id, Message.role == "user",
                           Message.id > parent.id, Message.id < message.id)
                    .values(parent_id=message.id)
                )
                await set_head(session, parent.conversation_id, message.id,
                               only_if_head=parent.id)
            elif answer.content and head == "take":
                await set_head(session, parent.conversation_id, message.id)
            return message

    async def add_deliveries(
        self, message_id: int, tg_chat_id: int, tg_message_ids: Sequence[int]
    ) -> None:
        """Record the Telegram messages a stored message was delivered as, in order."""
        async with self._sessionmaker.begin() as session:
            session.add_all(
                MessageDelivery(
                    message_id=message_id, tg_chat_id=tg_chat_id, tg_message_id=tg_id, part=part
                )
                for part, tg_id in enumerate(tg_message_ids)
            )

    async def path_to(self, message_id: int) -> list[Message]:
        """The message and its ancestors, root first: the history a turn was answered with."""
        ancestors = (
            sa.select(Message.id, Message.parent_id, sa.literal(0).label("depth"))
            .where(Message.id == message_id)
            .cte("ancestors", recursive=True)
        )
        ancestors = ancestors.union_all(
            sa.select(Message.id, Message.parent_id, ancestors.c.depth + 1).join(
                ancestors, Message.id == ancestors.c.parent_id
            )
        )
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                sa.select(Message)
                .join(ancestors, Message.id == ancestors.c.id)
                .order_by(ancestors.c.depth.desc())
            )
            return list(rows)

    async def get_message(self, message_id: int) -> Message | None:
        async with self._sessionmaker() as session:
            return await session.get(Message, message_id)

    async def deliveries(self, message_id: int) -> list[MessageDelivery]:
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                sa.select(MessageDelivery)
                .where(MessageDelivery.message_id == message_id)
                .order_by(MessageDelivery.part)
            )
            return list(rows)
