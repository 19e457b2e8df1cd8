"""/privacy: a user's consent to dumps, and "forget me" (everything of theirs deleted).

Forgetting runs in one transaction. Whatever can go is deleted: the user's private chat with
the bot (its conversations, messages, deliveries, judgements), their votes, answer edits and
battles anywhere, their row (settings, consent, tier) and the audit log's mentions of their id.
In group chats a message of theirs, or an answer to one of their questions, that other people's
messages hang below is kept as a tombstone so the others' conversation stays whole: empty
content, no author, attachments, reasoning or system prompt, origin `forgotten` (dumps leave
out every row whose dialog holds one). Nothing in the returned `Forgotten` holds content.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import (
    AnswerEdit,
    AuditEntry,
    Battle,
    Chat,
    Conversation,
    Message,
    MessageDelivery,
    User,
    Vote,
)

FORGOTTEN = "forgotten"  # Message.origin of a tombstone
FORGET_TRIES = 3
AUDIT_ACTION = "forget"


class QuestionGone(Exception):
    """The question an answer was being written to was forgotten (or deleted) meanwhile."""


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    data_consent: bool | None  # None: follows DATA_CONSENT
    lang: str | None  # the /lang choice


@dataclass(slots=True)
class Forgotten:
    """What forgetting removed: counts for the audit log, and what the caller needs to clear
    the same person out of shared state (Redis): internal ids, never content."""

    user_id: int
    counts: dict[str, int] = field(default_factory=dict)
    message_ids: list[int] = field(default_factory=list)  # the user's messages, all gone
    # (Telegram chat id, topic or None) of every conversation the user wrote in.
    places: list[tuple[int, int | None]] = field(default_factory=list)


def _deletable(members: set[int], children: dict[int, list[int]]) -> set[int]:
    """The members whose whole subtree is members (nothing of anyone else hangs below)."""
    result: set[int] = set()
    state: dict[int, bool] = {}

    def clean(node: int) -> bool:
        # Iterative post-order: trees can be deep (long conversations).
        stack = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if current in state:
                continue
            if not expanded:
                stack.append((current, True))
                stack.extend((child, False) for child in children.get(current, ())
                             if child not in state)
                continue
            state[current] = current in members and all(
                state[child] for child in children.get(current, ()))
        return state[node]

    for member in members:
        if clean(member):
            result.add(member)
    return result


class PrivacyRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def set_consent(self, telegram_id: int, consent: bool | None) -> bool:
        """/privacy's opt out (False) or opt in (True); None follows DATA_CONSENT again.
        False if the user is not stored (forgotten: nothing is created)."""
        async with self._sessionmaker.begin() as session:
            found = await session.execute(
                sa.update(User).where(User.telegram_id == telegram_id)
                .values(data_consent=consent, consent_at=sa.func.now())
                .returning(User.id))
            return found.first() is not None

    async def person(self, telegram_id: int) -> Person | None:
        """The stored person with this Telegram id (None: not stored; nothing is created)."""
        async with self._sessionmaker() as session:
            row = (await session.execute(
                sa.select(User.id, User.data_consent, User.lang)
                .where(User.telegram_id == telegram_id))).first()
            return None if row is None else Person(*row)

    async def forget(self, telegram_id: int,
                     locked: Callable[[int], Awaitable[None]] | None = None,
                     ) -> Forgotten | None:
        """Delete everything of the person with this Telegram id (see the module's doc), and
        log it (action `forget`, counts only). None if nothing of theirs is stored.

        `locked(user_id)` is awaited once their row and messages are locked, before anything
        is deleted: answers being written to them that it stops then find their question gone
        when they end (`QuestionGone`), whichever process writes them."""
        for attempt in range(1, FORGET_TRIES + 1):
            try:
                async with self._sessionmaker.begin() as session:
                    return await forget_in(session, telegram_id, locked)
            except DBAPIError as exc:
                # A deadlock with an answer being settled at that moment (it holds its
                # conversation, we hold the person's messages): the database aborted one of
                # the two; forgetting again is safe (all or nothing).
                if attempt == FORGET_TRIES or getattr(exc.orig, "sqlstate", None) not in (
                        "40P01", "40001"):
                    raise
        raise AssertionError("unreachable")


async def forget_in(session: AsyncSession, telegram_id: int,
                    locked: Callable[[int], Awaitable[None]] | None = None,
                    ) -> Forgotten | None:
    user_id = await session.scalar(
        sa.select(User.id).where(User.telegram_id == telegram_id).with_for_update())
    if user_id is None:
        return None
    done = Forgotten(user_id)
    counts = done.counts
    # The user's messages, locked: an answer being stored under one of them waits for this
    # transaction, then finds its question gone (`QuestionGone`).
    own = list((await session.execute(
        sa.select(Message.id, Message.conversation_id)
        .where(Message.author_id == user_id).order_by(Message.id).with_for_update())).all())
    done.message_ids = [row.id for row in own]
    if locked is not None:
        await locked(user_id)
    conversations = {row.conversation_id for row in own}
    place_rows = (await session.execute(
        sa.select(Chat.telegram_id, Conversation.thread_id)
        .join(Chat, Chat.id == Conversation.chat_id)
        .where(sa.or_(Conversation.id.in_(conversations) if conversations else sa.false(),
                      Chat.telegram_id == telegram_id)))).all()
    done.places = sorted({(chat, thread or None) for chat, thread in place_rows},
                         key=lambda p: (p[0], p[1] or 0))

    counts["votes"] = (await session.execute(
        sa.delete(Vote).where(Vote.user_id == user_id))).rowcount or 0
    counts["edits"] = (await session.execute(
        sa.delete(AnswerEdit).where(AnswerEdit.user_id == user_id))).rowcount or 0
    counts["battles"] = (await session.execute(
        sa.delete(Battle).where(Battle.user_id == user_id))).rowcount or 0

    # The private chat with the bot goes whole (conversations, messages, deliveries cascade).
    private = await session.scalar(sa.select(Chat.id).where(Chat.telegram_id == telegram_id))
    counts["conversations"] = 0
    counts["messages_deleted"] = 0
    if private is not None:
        counts["conversations"] = await session.scalar(
            sa.select(sa.func.count()).select_from(Conversation)
            .where(Conversation.chat_id == private)) or 0
        counts["messages_deleted"] = await session.scalar(
            sa.select(sa.func.count()).select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.chat_id == private)) or 0
        await session.execute(sa.delete(Chat).where(Chat.id == private))
    counts["messages_deleted"] += await _forget_in_groups(session, user_id, counts)

    # Audit entries about them (/ban, /tier) lose the id and the detail (a ban reason may
    # name them); entries they made as an admin lose the actor with their row (SET NULL).
    counts["audit_scrubbed"] = (await session.execute(
        sa.update(AuditEntry).where(AuditEntry.target == str(telegram_id))
        .values(target=None, detail=None))).rowcount or 0
    await session.execute(sa.delete(User).where(User.id == user_id))
    session.add(AuditEntry(actor_id=None, action=AUDIT_ACTION, target=None, detail=dict(counts)))
    return done


async def _forget_in_groups(session: AsyncSession, user_id: int,
                            counts: dict[str, int]) -> int:
    """The user's messages left after their private chat went (group chats), and the answers
    to their questions: deleted where nothing of others hangs below, blanked otherwise.
    Returns how many were deleted (`counts["messages_blanked"]` gets the others)."""
    questions = sa.select(Message.id).where(Message.author_id == user_id)
    answers = sa.select(Message.id).where(Message.role == "assistant",
                                          Message.parent_id.in_(questions))
    members = {*await session.scalars(questions), *await session.scalars(answers)}
    counts["messages_blanked"] = 0
    if not members:
        return 0
    conversation_ids = set(await session.scalars(
        sa.select(Message.conversation_id).where(Message.id.in_(members)).distinct()))
    tree = (await session.execute(
        sa.select(Message.id, Message.parent_id)
        .where(Message.conversation_id.in_(conversation_ids)))).all()
    children: dict[int, list[int]] = defaultdict(list)
    parent_of: dict[int, int | None] = {}
    for node, parent in tree:
        parent_of[node] = parent
        if parent is not None:
            children[parent].append(node)
    gone = _deletable(members, children)
    kept = members - gone
    # A conversation standing on a deleted message goes on from its nearest kept ancestor.
    heads = (await session.execute(
        sa.select(Conversation.id, Conversation.head_message_id)
        .where(Conversation.id.in_(conversation_ids)).with_for_update())).all()
    for conversation_id, head in heads:
        if head in gone:
            target = parent_of.get(head)
            while target is not None and target in gone:
                target = parent_of.get(target)
            await session.execute(sa.update(Conversation)
                                  .where(Conversation.id == conversation_id)
                                  .values(head_message_id=target))
    if kept:
        await session.execute(sa.delete(MessageDelivery)
                              .where(MessageDelivery.message_id.in_(kept)))
        await session.execute(
            sa.update(Message).where(Message.id.in_(kept))
            .values(content="", author_id=None, attachments=sa.null(), reasoning=None,
                    system_prompt=None, persona_id=None, origin=FORGOTTEN))
    if gone:
        await session.execute(sa.delete(Message).where(Message.id.in_(gone)))
    counts["messages_blanked"] = len(kept)
    return len(gone)


__all__ = ["AUDIT_ACTION", "FORGOTTEN", "Forgotten", "Person", "PrivacyRepository",
           "QuestionGone",
           "forget_in"]
