"""Conversations and the message tree: what was said, by whom, and what produced each answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import dialect_insert
from storage.models import UNSHOWN_STATUSES, Conversation, Message, MessageDelivery, User
from storage.repositories.privacy import FORGOTTEN, QuestionGone
from storage.repositories.users import ChatPrefs, TelegramUser, touch_with_prefs_in

_MESSAGE = Message.__table__
_DELIVERY = MessageDelivery.__table__
_CONVERSATION = Conversation.__table__

# The statements of every turn, built once (with bound parameters): building a statement and
# its cache key on each call cost more than running it.
_OPEN = sa.select(Conversation.id, Conversation.head_message_id).where(
    Conversation.chat_id == sa.bindparam("chat"), Conversation.thread_id == sa.bindparam("thread"),
    Conversation.closed_at.is_(None),
).with_for_update()
_HEAD = sa.select(Conversation.head_message_id).where(
    Conversation.id == sa.bindparam("conversation")).with_for_update()
_SET_HEAD = sa.update(_CONVERSATION).where(
    _CONVERSATION.c.id == sa.bindparam("conversation")).values(head_message_id=sa.bindparam("to"))
_MOVE_QUESTIONS = sa.update(_MESSAGE).where(
    _MESSAGE.c.parent_id == sa.bindparam("question"), _MESSAGE.c.role == "user",
).values(parent_id=sa.bindparam("to"))
_INSERT_MESSAGE = sa.insert(_MESSAGE).returning(_MESSAGE.c.id, _MESSAGE.c.created_at)
_INSERT_DELIVERY = sa.insert(_DELIVERY)
_QUESTION_ORIGIN = sa.select(Message.origin).where(
    Message.id == sa.bindparam("question")).with_for_update(read=True)
_ANSWER_ORIGIN = sa.select(Message.origin).where(
    Message.id == sa.bindparam("answer")).with_for_update()
_LAST_PART = sa.select(sa.func.max(MessageDelivery.part)).where(
    MessageDelivery.message_id == sa.bindparam("message"))


def _path_query() -> sa.Select:
    ancestors = (
        sa.select(Message.id, Message.parent_id, sa.literal(0).label("depth"))
        .where(Message.id == sa.bindparam("start"))
        .cte("ancestors", recursive=True)
    )
    ancestors = ancestors.union_all(
        sa.select(Message.id, Message.parent_id, ancestors.c.depth + 1).join(
            ancestors, Message.id == ancestors.c.parent_id
        )
    )
    return (sa.select(Message).join(ancestors, Message.id == ancestors.c.id)
            .order_by(ancestors.c.depth.desc()))


_PATH = _path_query()


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
    context_dropped: int = 0  # earliest history messages left out to fit the context window
    persona_id: str | None = None  # the persona whose prompt is `system_prompt`
    reasoning: str | None = None  # the model's thinking, kept apart from `content`


def shown(message: Message) -> bool:
    """Whether the user saw this answer as text: only such an answer carries a conversation."""
    return message.status not in UNSHOWN_STATUSES and bool(message.content.strip())


async def is_latest_turn(session: AsyncSession, conversation: Conversation,
                         question: Message) -> bool:
    """Whether `conversation` is still at the turn of `question`: its head is the question, an
    answer to it, or the question's parent (this turn, and any after it, got no answer).

    A judgement or regeneration of an older turn is stored without moving the conversation
    there, which would silently drop every later turn from the model's context.
    """
    return await _at_turn(session, conversation.head_message_id, question)


async def _at_turn(session: AsyncSession, head: int | None, question: Message) -> bool:
    """`is_latest_turn` for a conversation whose head is `head`."""
    if head in (question.id, question.parent_id):
        return True
    if head is None:
        return False
    return await session.scalar(sa.select(Message.parent_id).where(Message.id == head)) == (
        question.id)


async def move_head_if_latest(session: AsyncSession, question: Message, message_id: int) -> None:
    """Continue the conversation from `message_id` (an answer to `question`) if it is still at
    that turn."""
    conversation = await session.get(
        Conversation, question.conversation_id, with_for_update=True
    )
    if conversation is not None and await is_latest_turn(session, conversation, question):
        conversation.head_message_id = message_id


async def _set_head(session: AsyncSession, conversation_id: int, head: int | None) -> None:
    await session.execute(_SET_HEAD, {"conversation": conversation_id, "to": head})


async def _move_on(session: AsyncSession, conversation_id: int, current: int | None,
                   question_id: int, target: int | None) -> None:
    """The turn of question `question_id` is over: continue from `target` (its answer, or its
    parent if the user saw none). Questions sent meanwhile were stored under it; in the chat
    they came after it, so they move under `target` too. `current`: the conversation's head,
    read under its row lock."""
    await session.execute(_MOVE_QUESTIONS, {"question": question_id, "to": target})
    if current == question_id:
        await _set_head(session, conversation_id, target)


class AlreadyStored(Exception):
    """This Telegram message was stored before (Telegram delivered the update twice)."""


@dataclass(slots=True)
class Asked:
    """A stored question, with what its turn needs: the asker, the chat, the history."""

    user: User
    chat_row_id: int
    question: Message
    path: list[Message]  # root first, ending with the question
    prefs: ChatPrefs = field(default_factory=ChatPrefs)  # the chat's prompt, persona, model


async def _path(session: AsyncSession, message_id: int | None) -> list[Message]:
    """The message and its ancestors, root first."""
    if message_id is None:
        return []
    return list(await session.scalars(_PATH, {"start": message_id}))


async def _add_question(session: AsyncSession, conversation_id: int, head: int | None,
                        author_id: int, content: str, tg_chat_id: int,
                        tg_message_id: int,
                        attachments: list[dict[str, Any]] | None = None) -> Message:
    """Add a user's message under `head`, the (locked) conversation's head, and make it the
    head. Plain statements, no unit of work: this runs for every message. A Telegram message
    stored before fails here with IntegrityError."""
    values = {"conversation_id": conversation_id, "parent_id": head, "role": "user",
              "origin": "original", "author_id": author_id, "content": content,
              "status": "complete"}
    if attachments:
        values["attachments"] = attachments
    message_id, created_at = (await session.execute(_INSERT_MESSAGE, values)).one()
    await session.execute(_INSERT_DELIVERY, {
        "message_id": message_id, "tg_chat_id": tg_chat_id, "tg_message_id": tg_message_id,
        "part": 0})
    await _set_head(session, conversation_id, message_id)
    return Message(id=message_id, created_at=created_at, **values)


async def _add_deliveries(session: AsyncSession, message_id: int, tg_chat_id: int,
                          tg_message_ids: Sequence[int]) -> None:
    if not tg_message_ids:
        return
    last = await session.scalar(_LAST_PART, {"message": message_id})
    first = 0 if last is None else last + 1
    await session.execute(
        _INSERT_DELIVERY,
        [{"message_id": message_id, "tg_chat_id": tg_chat_id, "tg_message_id": tg_id,
          "part": part} for part, tg_id in enumerate(tg_message_ids, start=first)],
    )


class ConversationRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    @staticmethod
    async def _open_row(session: AsyncSession, chat_row_id: int,
                        thread: int) -> tuple[int, int | None] | None:
        """(id, head) of the open conversation of a chat's topic, locked for this transaction."""
        row = (await session.execute(_OPEN, {"chat": chat_row_id, "thread": thread})).first()
        return None if row is None else (row.id, row.head_message_id)

    async def _open(self, session: AsyncSession, chat_row_id: int,
                    thread: int) -> Conversation | None:
        return await session.scalar(
            sa.select(Conversation).where(
                Conversation.chat_id == chat_row_id, Conversation.thread_id == thread,
                Conversation.closed_at.is_(None),
            )
        )

    async def ask(self, author: TelegramUser, chat: tuple[int, str, str | None],
                  thread_id: int | None, content: str, tg_message_id: int,
                  attachments: list[dict[str, Any]] | None = None,
                  more_tg_message_ids: Sequence[int] = ()) -> Asked:
        """Store a question in one short transaction: refresh the asker and the chat
        (`touch_in`), open the conversation of the chat or topic if need be, add the question
        under its head and make it the head, and read the history it will be answered with.

        `chat` is (Telegram chat id, type, title). `attachments`: images and voice by Telegram
        file_id and metadata (`bot.media`); `more_tg_message_ids`: the other Telegram messages
        of one question (an album's photos). Raises `AlreadyStored` for a Telegram message
        stored before."""
        tg_chat_id, chat_type, chat_title = chat
        thread = thread_id or 0
        try:
            async with self._sessionmaker.begin() as session:
                user, chat_row_id, prefs = await touch_with_prefs_in(
                    session, author, tg_chat_id, chat_type, chat_title)
                found = await self._open_row(session, chat_row_id, thread)
                if found is None:
                    # Another update may open it at the same moment: the unique index on open
                    # conversations decides, and the loser takes the winner's.
                    await session.execute(
                        dialect_insert(session)(Conversation)
                        .values(chat_id=chat_row_id, thread_id=thread, started_by_id=user.id)
                        .on_conflict_do_nothing(
                            index_elements=["chat_id", "thread_id"],
                            index_where=Conversation.closed_at.is_(None),
                        )
                    )
                    found = await self._open_row(session, chat_row_id, thread)
                    assert found is not None
                conversation_id, head = found
                question = await _add_question(session, conversation_id, head, user.id,
                                               content, tg_chat_id, tg_message_id, attachments)
                await _add_deliveries(session, question.id, tg_chat_id, more_tg_message_ids)
                path = [*await _path(session, head), question]
        except IntegrityError as exc:
            raise AlreadyStored(f"{tg_chat_id}/{tg_message_id}") from exc
        return Asked(user, chat_row_id, question, path, prefs)

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
            head = (await session.execute(_HEAD, {"conversation": conversation_id})).one()[0]
            return await _add_question(session, conversation_id, head, author_id, content,
                                       tg_chat_id, tg_message_id)

    async def store_answer(
        self, parent: Message, answer: AnswerRecord, *, origin: str = "original"
    ) -> Message:
        """Store an answer under `parent` without touching the conversation's head: until it is
        delivered, nobody knows whether the conversation continues from it (see `conclude`)."""
        values = {
            "conversation_id": parent.conversation_id, "parent_id": parent.id,
            "role": "assistant", "origin": origin, "author_id": None,
            "content": answer.content, "status": answer.status,
            "error_kind": answer.error_kind, "model_id": answer.model_id,
            "served_model": answer.served_model, "system_prompt": answer.system_prompt,
            "params": answer.params, "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens, "ttft_ms": answer.ttft_ms,
            "total_ms": answer.total_ms, "finish_reason": answer.finish_reason,
            "decoding": answer.decoding, "context_dropped": answer.context_dropped or None,
            "persona_id": answer.persona_id,
            "reasoning": answer.reasoning or None,
        }
        async with self._sessionmaker.begin() as session:
            # The question, share-locked: a "forget me" running meanwhile either finishes first
            # (then the question is gone or a tombstone, and nothing is stored) or waits for
            # this answer and forgets it with the question.
            origin_now = await session.scalar(_QUESTION_ORIGIN, {"question": parent.id})
            if origin_now is None or origin_now == FORGOTTEN:
                raise QuestionGone(parent.id)
            message_id, created_at = (await session.execute(_INSERT_MESSAGE, values)).one()
        return Message(id=message_id, created_at=created_at, **values)

    async def conclude(
        self, answer: Message, *, head: str = "follow", status: str | None = None,
        delivered: tuple[int, Sequence[int]] | None = None,
    ) -> None:
        """Settle the conversation once the user has (or has not) seen `answer`.

        `delivered` (Telegram chat id, message ids) first records what the answer was delivered
        as (`add_deliveries`), in the same transaction. `status` re-marks the answer (e.g.
        "undelivered"). Then `head`:

        - "follow" (a normal turn): if the user saw the answer, the conversation continues from
          it; if not (see `UNSHOWN_STATUSES`, or no text), it returns to the question's parent,
          so the next question is a sibling of the unanswered one and is not glued onto it.
          Questions sent while this one was being answered were stored under it; in the chat
          they came after it, so they move below the answer (or beside the question).
        - "take" (a regeneration): the conversation continues from the new answer only if it
          is still at this turn (`is_latest_turn`); an older answer's new sibling is stored
          without moving the conversation back.
        - "keep": the head is left alone (arena's answer B).
        """
        question_id = answer.parent_id
        assert question_id is not None
        async with self._sessionmaker.begin() as session:
            # The conversation's row lock first: a question stored meanwhile waits for this
            # settling, then goes under the head it leaves.
            row = (await session.execute(
                _HEAD, {"conversation": answer.conversation_id})).first()
            if row is None:  # deleted meanwhile
                return
            current = row.head_message_id
            # Forgotten since it was stored ("forget me"): nothing more is recorded of it.
            if await session.scalar(_ANSWER_ORIGIN, {"answer": answer.id}) in (None, FORGOTTEN):
                return
            if delivered is not None:
                await _add_deliveries(session, answer.id, *delivered)
            if status is not None and status != answer.status:
                await session.execute(
                    sa.update(Message).where(Message.id == answer.id).values(status=status)
                )
                answer.status = status
            if head == "follow":
                target = answer.id if shown(answer) else await session.scalar(
                    sa.select(Message.parent_id).where(Message.id == question_id))
                await _move_on(session, answer.conversation_id, current, question_id, target)
            elif head == "take" and shown(answer):
                question = await session.get(Message, question_id)
                assert question is not None
                if await _at_turn(session, current, question):
                    await _set_head(session, answer.conversation_id, answer.id)

    async def abandon(self, question: Message) -> None:
        """A turn broke off before any answer was settled (an unexpected error): the
        conversation returns to where it was before `question`, as for an answer never shown."""
        async with self._sessionmaker.begin() as session:
            current = await session.scalar(_HEAD, {"conversation": question.conversation_id})
            await _move_on(session, question.conversation_id, current, question.id,
                           question.parent_id)

    async def add_answer(
        self, parent: Message, answer: AnswerRecord, *, origin: str = "original",
        head: str = "follow",
    ) -> Message:
        """Store an answer the user has seen and settle the conversation (`conclude`)."""
        message = await self.store_answer(parent, answer, origin=origin)
        await self.conclude(message, head=head)
        return message

    async def add_deliveries(
        self, message_id: int, tg_chat_id: int, tg_message_ids: Sequence[int]
    ) -> None:
        """Record the Telegram messages a stored message was delivered as, in order (after any
        recorded before: the parts that got through, then a notice about the rest)."""
        if not tg_message_ids:
            return
        async with self._sessionmaker.begin() as session:
            if await session.scalar(_ANSWER_ORIGIN, {"answer": message_id}) in (None, FORGOTTEN):
                return  # forgotten meanwhile ("forget me")
            await _add_deliveries(session, message_id, tg_chat_id, tg_message_ids)

    async def set_content(self, message: Message, content: str) -> None:
        """Fill in a stored question's text afterwards (a voice note's transcript)."""
        async with self._sessionmaker.begin() as session:
            await session.execute(sa.update(Message).where(Message.id == message.id)
                                  .values(content=content))
        message.content = content

    async def is_open_head(self, message_id: int) -> bool:
        """Whether the message is where its open conversation stands (nothing came after)."""
        async with self._sessionmaker() as session:
            row = (await session.execute(
                sa.select(Conversation.head_message_id, Conversation.closed_at)
                .join(Message, Message.conversation_id == Conversation.id)
                .where(Message.id == message_id))).first()
            return row is not None and row.closed_at is None and row.head_message_id == message_id

    async def path_to(self, message_id: int) -> list[Message]:
        """The message and its ancestors, root first: the history a turn was answered with."""
        async with self._sessionmaker.begin() as session:
            return await _path(session, message_id)

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
