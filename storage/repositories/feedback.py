"""Judgements on stored answers: votes, edits, battles, and a user's contribution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased

from storage.db import dialect_insert
from storage.models import AnswerEdit, Battle, Conversation, Message, MessageDelivery, Vote
from storage.repositories.conversations import move_head_if_latest
from storage.repositories.privacy import FORGOTTEN, QuestionGone


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer a callback refers to, checked to belong to the chat the button was pressed in."""

    message: Message
    tg_message_ids: list[int]


@dataclass(frozen=True, slots=True)
class UserStats:
    likes: int
    dislikes: int
    edits: int
    battles: int
    favourite_model: str | None


class BattleVoteRefused(Exception):
    """Not the asker's battle, or the vote is older than the change window."""


class FeedbackRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def answer_in_chat(self, message_id: int, chat_row_id: int,
                             tg_chat_id: int) -> StoredAnswer | None:
        """The assistant message `message_id` if it lives in this chat, with its deliveries."""
        async with self._sessionmaker() as session:
            message = await session.scalar(
                sa.select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Message.id == message_id,
                    Message.role == "assistant",
                    Conversation.chat_id == chat_row_id,
                )
            )
            if message is None:
                return None
            ids = await session.scalars(
                sa.select(MessageDelivery.tg_message_id)
                .where(
                    MessageDelivery.message_id == message_id,
                    MessageDelivery.tg_chat_id == tg_chat_id,
                )
                .order_by(MessageDelivery.part)
            )
            return StoredAnswer(message, list(ids))

    async def toggle_vote(self, message_id: int, user_id: int, chat_row_id: int,
                          value: int) -> int | None:
        """Set the user's vote; the same value again removes it. Returns the vote now stored."""
        async with self._sessionmaker.begin() as session:
            existing = await session.scalar(
                sa.select(Vote)
                .where(Vote.message_id == message_id, Vote.user_id == user_id)
                .with_for_update()
            )
            if existing is not None and existing.value == value:
                await session.delete(existing)
                return None
            if existing is not None:
                existing.value = value
                return value
            insert = dialect_insert(session)(Vote).values(
                message_id=message_id, user_id=user_id, chat_id=chat_row_id, value=value
            )
            # A concurrent first press by the same user lands on the same row.
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["message_id", "user_id"],
                    set_={"value": value, "updated_at": sa.func.now()},
                )
            )
            return value

    async def vote_counts(self, message_id: int) -> tuple[int, int]:
        async with self._sessionmaker() as session:
            rows = await session.execute(
                sa.select(Vote.value, sa.func.count())
                .where(Vote.message_id == message_id)
                .group_by(Vote.value)
            )
            counts = {value: count for value, count in rows.all()}
            return counts.get(1, 0), counts.get(-1, 0)

    async def add_edit(self, original: Message, user_id: int, chat_row_id: int,
                       content: str) -> Message:
        """Store the user's improved answer as an `edited` sibling of the original and continue
        the conversation from it, if the conversation is still at that turn."""
        async with self._sessionmaker.begin() as session:
            edited = Message(
                conversation_id=original.conversation_id,
                parent_id=original.parent_id,
                role="assistant",
                origin="edited",
                author_id=user_id,
                content=content,
                status="complete",
                model_id=original.model_id,
                served_model=original.served_model,
                system_prompt=original.system_prompt,
                params=original.params,
            )
            session.add(edited)
            await session.flush()
            session.add(AnswerEdit(original_id=original.id, edited_id=edited.id,
                                   user_id=user_id, chat_id=chat_row_id))
            question = await session.get(Message, original.parent_id)
            assert question is not None
            await move_head_if_latest(session, question, edited.id)
            return edited

    async def create_battle(self, *, chat_row_id: int, user_id: int, prompt: Message,
                            answer_a: Message, answer_b: Message) -> Battle:
        async with self._sessionmaker.begin() as session:
            # The prompt, share-locked: forgotten meanwhile ("forget me"), there is no battle.
            origin = await session.scalar(sa.select(Message.origin).where(
                Message.id == prompt.id).with_for_update(read=True))
            if origin is None or origin == FORGOTTEN:
                raise QuestionGone(prompt.id)
            battle = Battle(
                chat_id=chat_row_id, user_id=user_id, prompt_id=prompt.id,
                answer_a_id=answer_a.id, answer_b_id=answer_b.id,
                model_a=answer_a.model_id, model_b=answer_b.model_id, anonymous=True,
            )
            session.add(battle)
            return battle

    async def delete_battle(self, battle_id: int) -> None:
        """A battle whose buttons never reached the user is no battle."""
        async with self._sessionmaker.begin() as session:
            await session.execute(sa.delete(Battle).where(Battle.id == battle_id))

    async def battle_in_chat(self, battle_id: int, chat_row_id: int) -> Battle | None:
        async with self._sessionmaker() as session:
            return await session.scalar(
                sa.select(Battle).where(Battle.id == battle_id, Battle.chat_id == chat_row_id)
            )

    async def vote_battle(self, battle_id: int, user_id: int, winner: str,
                          change_window: timedelta) -> tuple[Battle, bool]:
        """Record (or, within the window, change) the winner. Returns the battle and whether
        anything changed. If this battle is still the conversation's latest turn, the
        conversation continues from the winner (A on a tie)."""
        async with self._sessionmaker.begin() as session:
            battle = await session.get(Battle, battle_id, with_for_update=True)
            if battle is None or battle.user_id != user_id:
                raise BattleVoteRefused("not yours")
            now = datetime.now(UTC)
            if battle.voted_at is not None:
                if battle.winner == winner:
                    return battle, False
                if now - _aware(battle.voted_at) > change_window:
                    raise BattleVoteRefused("final")
            if battle.winner != winner:
                battle.strength = None
            battle.winner = winner
            battle.voted_at = now
            answer_id = battle.answer_b_id if winner == "b" else battle.answer_a_id
            prompt = await session.get(Message, battle.prompt_id)
            assert prompt is not None
            await move_head_if_latest(session, prompt, answer_id)
            return battle, True

    async def set_battle_strength(self, battle_id: int, user_id: int, strength: str,
                                  change_window: timedelta) -> Battle:
        async with self._sessionmaker.begin() as session:
            battle = await session.get(Battle, battle_id, with_for_update=True)
            if battle is None or battle.user_id != user_id or battle.winner not in ("a", "b"):
                raise BattleVoteRefused("not yours")
            assert battle.voted_at is not None
            if datetime.now(UTC) - _aware(battle.voted_at) > change_window:
                raise BattleVoteRefused("final")
            battle.strength = strength
            return battle

    async def judged_battles(self, *, anonymous_only: bool = True
                             ) -> AsyncIterator[tuple[str, str, str]]:
        """(model_a, model_b, winner) of every judged battle whose two answers finished,
        streamed from the database: the battles `chatmux export --format arena` writes, so a
        fit of the dump gives the same ratings (a cut or stopped answer was judged unfinished)."""
        answer_a, answer_b = aliased(Message), aliased(Message)
        query = (
            sa.select(Battle.model_a, Battle.model_b, Battle.winner)
            .join(answer_a, answer_a.id == Battle.answer_a_id)
            .join(answer_b, answer_b.id == Battle.answer_b_id)
            .where(Battle.winner.is_not(None), *_finished(answer_a), *_finished(answer_b))
        )
        if anonymous_only:
            query = query.where(Battle.anonymous.is_(True))
        async with self._sessionmaker() as session:
            result = await session.stream(query.execution_options(yield_per=5000))
            async for model_a, model_b, winner in result:
                yield model_a, model_b, winner

    async def user_stats(self, user_id: int) -> UserStats:
        async with self._sessionmaker() as session:
            votes = dict(
                (
                    await session.execute(
                        sa.select(Vote.value, sa.func.count())
                        .where(Vote.user_id == user_id)
                        .group_by(Vote.value)
                    )
                ).all()
            )
            edits = await session.scalar(
                sa.select(sa.func.count()).select_from(AnswerEdit)
                .where(AnswerEdit.user_id == user_id)
            )
            judged = sa.select(Battle).where(Battle.user_id == user_id,
                                             Battle.winner.is_not(None)).subquery()
            battles = await session.scalar(sa.select(sa.func.count()).select_from(judged))
            winner_model = sa.case(
                (judged.c.winner == "a", judged.c.model_a),
                (judged.c.winner == "b", judged.c.model_b),
            )
            favourite = await session.scalar(
                sa.select(winner_model)
                .where(judged.c.winner.in_(("a", "b")))
                .group_by(winner_model)
                .order_by(sa.func.count().desc(), winner_model)
                .limit(1)
            )
            return UserStats(votes.get(1, 0), votes.get(-1, 0), edits or 0, battles or 0,
                             favourite)


def _finished(answer: type[Message]) -> list[sa.ColumnElement[bool]]:
    """An answer that ended normally and says something (as the dumps require)."""
    return [answer.status == "complete", sa.func.length(sa.func.trim(answer.content)) > 0]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
