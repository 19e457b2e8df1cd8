"""Telegram users and chats, and each user's model choice."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import dialect_insert
from storage.models import Chat, User


@dataclass(frozen=True, slots=True)
class TelegramUser:
    telegram_id: int
    username: str | None = None
    first_name: str | None = None
    language_code: str | None = None


def _upsert(session: AsyncSession, table: sa.Table, values: dict, update: list[str]) -> sa.Insert:
    stmt = dialect_insert(session)(table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=["telegram_id"], set_={name: stmt.excluded[name] for name in update}
    ).returning(table.c.id)


# Built once: this runs for every message (see `touch_in`).
_KNOWN = (sa.select(User, Chat.id, Chat.type, Chat.title)
          .join(Chat, Chat.telegram_id == sa.bindparam("chat"))
          .where(User.telegram_id == sa.bindparam("user")))


async def touch_in(session: AsyncSession, user: TelegramUser, chat_id: int, chat_type: str,
                   chat_title: str | None) -> tuple[User, int]:
    """`UserRepository.touch` inside a transaction of the caller's (one that stores a question
    does it on the way). Rows are written only when something changed: a user who writes
    again costs one read."""
    found = (await session.execute(_KNOWN, {"chat": chat_id, "user": user.telegram_id})).first()
    if found is not None:
        row, chat_row_id, known_type, known_title = found
        if ((row.username, row.first_name, row.language_code, known_type, known_title)
                == (user.username, user.first_name, user.language_code, chat_type, chat_title)):
            return row, chat_row_id
    user_id = (
        await session.execute(
            _upsert(
                session,
                User.__table__,
                {
                    "telegram_id": user.telegram_id,
                    "username": user.username,
                    "first_name": user.first_name,
                    "language_code": user.language_code,
                },
                ["username", "first_name", "language_code"],
            )
        )
    ).scalar_one()
    chat_row_id = (
        await session.execute(
            _upsert(
                session,
                Chat.__table__,
                {"telegram_id": chat_id, "type": chat_type, "title": chat_title},
                ["type", "title"],
            )
        )
    ).scalar_one()
    row = await session.get(User, user_id, populate_existing=True)
    assert row is not None
    return row, chat_row_id


class UserRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def touch(self, user: TelegramUser, chat_id: int, chat_type: str,
                    chat_title: str | None) -> tuple[User, int]:
        """Create or refresh the user and the chat; returns the user row and the chat's row id."""
        async with self._sessionmaker.begin() as session:
            return await touch_in(session, user, chat_id, chat_type, chat_title)

    async def set_model(self, user_id: int, model_id: str) -> None:
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(User).where(User.id == user_id).values(model_id=model_id)
            )

    async def set_lang(self, user_id: int, lang: str | None) -> None:
        """The /lang choice; None follows the Telegram client's language again."""
        async with self._sessionmaker.begin() as session:
            await session.execute(sa.update(User).where(User.id == user_id).values(lang=lang))

    async def set_arena_mode(self, user_id: int, enabled: bool) -> None:
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(User).where(User.id == user_id).values(arena_mode=enabled)
            )
