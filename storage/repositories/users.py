"""Telegram users and chats, each user's model choice and generation settings, and each chat's
system prompt, persona and (in groups) model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class ChatPrefs:
    """What a chat chose (`Chat.system_prompt`, `.persona_id`, `.model_id`), read with the
    chat's row on every update at no extra query. None: not chosen."""

    system_prompt: str | None = None
    persona_id: str | None = None
    model_id: str | None = None


_PREF_COLUMNS = (Chat.system_prompt, Chat.persona_id, Chat.model_id)


def _upsert(session: AsyncSession, table: sa.Table, values: dict, update: list[str],
            returning: tuple = ()) -> sa.Insert:
    stmt = dialect_insert(session)(table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=["telegram_id"], set_={name: stmt.excluded[name] for name in update}
    ).returning(table.c.id, *returning)


# Built once: this runs for every message (see `touch_in`).
_KNOWN = (sa.select(User, Chat.id, Chat.type, Chat.title, *_PREF_COLUMNS)
          .join(Chat, Chat.telegram_id == sa.bindparam("chat"))
          .where(User.telegram_id == sa.bindparam("user")))


async def touch_in(session: AsyncSession, user: TelegramUser, chat_id: int, chat_type: str,
                   chat_title: str | None) -> tuple[User, int]:
    """`UserRepository.touch` inside a transaction of the caller's (one that stores a question
    does it on the way). Rows are written only when something changed: a user who writes
    again costs one read."""
    row, chat_row_id, _ = await touch_with_prefs_in(session, user, chat_id, chat_type,
                                                    chat_title)
    return row, chat_row_id


async def touch_with_prefs_in(session: AsyncSession, user: TelegramUser, chat_id: int,
                              chat_type: str, chat_title: str | None,
                              ) -> tuple[User, int, ChatPrefs]:
    """`touch_in`, plus the chat's choices (read by the same statements)."""
    found = (await session.execute(_KNOWN, {"chat": chat_id, "user": user.telegram_id})).first()
    if found is not None:
        row, chat_row_id, known_type, known_title, *prefs = found
        if ((row.username, row.first_name, row.language_code, known_type, known_title)
                == (user.username, user.first_name, user.language_code, chat_type, chat_title)):
            return row, chat_row_id, ChatPrefs(*prefs)
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
    chat_row_id, *prefs = (
        await session.execute(
            _upsert(
                session,
                Chat.__table__,
                {"telegram_id": chat_id, "type": chat_type, "title": chat_title},
                ["type", "title"],
                _PREF_COLUMNS,
            )
        )
    ).one()
    row = await session.get(User, user_id, populate_existing=True)
    assert row is not None
    return row, chat_row_id, ChatPrefs(*prefs)


class UserRepository:
    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    async def touch(self, user: TelegramUser, chat_id: int, chat_type: str,
                    chat_title: str | None) -> tuple[User, int]:
        """Create or refresh the user and the chat; returns the user row and the chat's row id."""
        async with self._sessionmaker.begin() as session:
            return await touch_in(session, user, chat_id, chat_type, chat_title)

    async def touch_with_prefs(self, user: TelegramUser, chat_id: int, chat_type: str,
                               chat_title: str | None) -> tuple[User, int, ChatPrefs]:
        """`touch`, plus the chat's choices (same statements, no extra query)."""
        async with self._sessionmaker.begin() as session:
            return await touch_with_prefs_in(session, user, chat_id, chat_type, chat_title)

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

    async def set_gen_settings(self, user_id: int, values: dict[str, Any] | None) -> None:
        """/settings: the user's generation parameters (None: the models' defaults)."""
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(User).where(User.id == user_id).values(gen_settings=values)
            )

    async def set_system_prompt(self, chat_row_id: int, text: str | None) -> None:
        """/system for a chat: its own prompt replaces any persona (None: back to the model's
        default, persona cleared too)."""
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(Chat).where(Chat.id == chat_row_id)
                .values(system_prompt=text, persona_id=None)
            )

    async def set_persona(self, chat_row_id: int, persona_id: str | None) -> None:
        """/persona for a chat: a persona replaces the chat's own prompt (None: no persona)."""
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(Chat).where(Chat.id == chat_row_id)
                .values(persona_id=persona_id, system_prompt=None)
            )

    async def set_chat_model(self, chat_row_id: int, model_id: str | None) -> None:
        """A group's model (/model by a chat admin); None: each asker's own."""
        async with self._sessionmaker.begin() as session:
            await session.execute(
                sa.update(Chat).where(Chat.id == chat_row_id).values(model_id=model_id)
            )
