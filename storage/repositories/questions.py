"""Questions after they were asked: found by their Telegram message, edited while queued, or
asked again in an edited version (a sibling branch of the conversation tree)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import UNSHOWN_STATUSES, Conversation, Message, MessageDelivery
from storage.repositories.conversations import (
    _INSERT_MESSAGE,
    _path,
    _set_head,
)
from storage.repositories.privacy import FORGOTTEN


@dataclass(slots=True)
class StoredQuestion:
    """A user's stored message and where it is."""

    message: Message
    open: bool  # its conversation is still open (no /new since)
    chat_row_id: int


@dataclass(slots=True)
class EditedAsk:
    question: Message  # the edited version, a sibling of the original
    path: list[Message]  # root first, ending with it


class QuestionRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def _stored(self, where: sa.ColumnElement[bool],
                      join_delivery: bool = False) -> StoredQuestion | None:
        query = (sa.select(Message, Conversation.closed_at, Conversation.chat_id)
                 .join(Conversation, Conversation.id == Message.conversation_id)
                 .where(Message.role == "user", where))
        if join_delivery:
            query = query.join(MessageDelivery, MessageDelivery.message_id == Message.id)
        async with self._sessionmaker() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        return StoredQuestion(row[0], row[1] is None, row[2])

    async def by_telegram(self, tg_chat_id: int, tg_message_id: int) -> StoredQuestion | None:
        """The user message stored for this Telegram message, if the bot stored it."""
        return await self._stored(sa.and_(MessageDelivery.tg_chat_id == tg_chat_id,
                                          MessageDelivery.tg_message_id == tg_message_id),
                                  join_delivery=True)

    async def get(self, message_id: int) -> StoredQuestion | None:
        return await self._stored(Message.id == message_id)

    async def set_text(self, message_id: int, content: str) -> bool:
        """Replace a question's text, unless it has been answered meanwhile."""
        answered = sa.exists().where(Message.parent_id == message_id,
                                     Message.role == "assistant")
        async with self._sessionmaker.begin() as session:
            result = await session.execute(
                sa.update(Message).where(Message.id == message_id, ~answered)
                .values(content=content))
            return bool(result.rowcount)

    async def has_answer(self, message_id: int) -> bool:
        async with self._sessionmaker() as session:
            return bool(await session.scalar(sa.select(sa.exists().where(
                Message.parent_id == message_id, Message.role == "assistant"))))

    async def attach(self, question_id: int, previous_id: int | None,
                     keep_parent: bool = False) -> list[Message] | None:
        """Make a queued question the conversation's next turn, just before it is answered:
        it goes under the end of the turn before it (`previous_id`'s answer the user saw, or
        where that turn started if they saw none; without one, the nearest answered point
        above it) and becomes the head. Questions are stored in the order their updates
        reached the database, which need not be the order they were sent in; this puts each
        after the answers before it. `keep_parent`: an edited version stays where it is (a
        sibling of the original). Returns its path (root first), or None if it is gone or its
        conversation was closed."""
        async with self._sessionmaker.begin() as session:
            question = await session.get(Message, question_id)
            if question is None or question.origin == FORGOTTEN:
                return None
            closed = await session.scalar(
                sa.select(Conversation.closed_at).where(
                    Conversation.id == question.conversation_id).with_for_update())
            if closed is not None:
                return None
            if not keep_parent:
                anchor = (await _turn_end(session, previous_id) if previous_id is not None
                          else await _answered_point(session, question.parent_id))
                if anchor != question.parent_id:
                    question.parent_id = anchor
                    await session.flush()
            await _set_head(session, question.conversation_id, question.id)
            return await _path(session, question.id)

    async def ask_edited(self, original: Message, author_id: int,
                         content: str) -> EditedAsk | None:
        """Store `content` as an edited sibling of question `original` (same parent, origin
        "edited") and continue the conversation from it; the original and its answers stay.
        None if the conversation was closed meanwhile."""
        async with self._sessionmaker.begin() as session:
            row = (await session.execute(
                sa.select(Conversation.closed_at).where(
                    Conversation.id == original.conversation_id).with_for_update())).first()
            if row is None or row.closed_at is not None:
                return None
            values = {"conversation_id": original.conversation_id,
                      "parent_id": original.parent_id, "role": "user", "origin": "edited",
                      "author_id": author_id, "content": content, "status": "complete"}
            message_id, created_at = (await session.execute(_INSERT_MESSAGE, values)).one()
            await _set_head(session, original.conversation_id, message_id)
            question = Message(id=message_id, created_at=created_at, **values)
            path = [*await _path(session, original.parent_id), question]
        return EditedAsk(question, path)


def _first_shown_answer(question_id: int) -> sa.Select:
    return (sa.select(Message.id).where(
        Message.parent_id == question_id, Message.role == "assistant",
        Message.status.not_in(UNSHOWN_STATUSES)).order_by(Message.id).limit(1))


async def _turn_end(session: AsyncSession, question_id: int) -> int | None:
    """Where the turn of `question_id` left the conversation: its (first) answer the user saw,
    else the point it was asked from."""
    answer = await session.scalar(_first_shown_answer(question_id))
    if answer is not None:
        return answer
    return await session.scalar(sa.select(Message.parent_id).where(Message.id == question_id))


async def _answered_point(session: AsyncSession, message_id: int | None) -> int | None:
    """The nearest point at or above `message_id` a new turn can follow: an answer, or a
    question's answer the user saw; questions still waiting for theirs are passed over."""
    while message_id is not None:
        row = (await session.execute(sa.select(Message.role, Message.parent_id).where(
            Message.id == message_id))).first()
        if row is None or row.role == "assistant":
            return message_id
        answer = await session.scalar(_first_shown_answer(message_id))
        if answer is not None:
            return answer
        message_id = row.parent_id
    return None
