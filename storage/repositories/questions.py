"""Questions after they were asked: found by their Telegram message, edited while queued, or
asked again in an edited version (a sibling branch of the conversation tree)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.models import Conversation, Message, MessageDelivery
from storage.repositories.conversations import (
    _INSERT_MESSAGE,
    _path,
    _set_head,
)


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
