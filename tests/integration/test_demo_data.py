"""Synthetic demo data on real Postgres and on SQLite: counts, a consistent tree, determinism,
and battles from which the leaderboard recovers the hidden ratings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage import demo_data
from storage.base import Base
from storage.db import create_engine, create_sessionmaker
from storage.demo_data import FAKE_TELEGRAM_IDS, DemoSummary, generate_demo_data
from storage.leaderboard import Battle, leaderboard
from storage.migrate import upgrade
from storage.models import AnswerEdit, Chat, Conversation, Message, User, Vote
from storage.models import Battle as BattleRow
from storage.repositories.conversations import ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser, UserRepository

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
async def sessionmaker(request, tmp_path, database_url) -> AsyncIterator[Any]:
    if request.param == "postgres":
        url = database_url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
        await upgrade(url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def fetch(sessionmaker, model: type[Base]) -> list[dict[str, Any]]:
    """Every row of the model's table, typed (JSON decoded, datetimes parsed), by id."""
    table = model.__table__
    async with sessionmaker() as session:
        result = await session.execute(sa.select(table).order_by(table.c.id))
        return [dict(r) for r in result.mappings()]


async def count(sessionmaker, query: str) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(sa.text(query))).scalar_one())


async def test_counts_and_the_tree_are_consistent(sessionmaker, monkeypatch):
    monkeypatch.setattr(demo_data, "BATCH_BATTLES", 150)  # several transactions
    batches: list[int] = []
    summary = await generate_demo_data(sessionmaker, battles=800, seed=5, users=40,
                                       progress=batches.append, until=UNTIL)
    assert len(batches) >= 5 and batches == sorted(batches) and batches[-1] == 800
    assert summary.battles == 800 and summary.chat_turns == 200
    tables = {"user_account": summary.users, "chat": summary.chats,
              "conversation": summary.conversations, "message": summary.messages,
              "battle": summary.battles, "vote": summary.votes, "answer_edit": summary.edits}
    for table, expected in tables.items():
        assert await count(sessionmaker, f"SELECT count(*) FROM {table}") == expected, table
    assert summary.users == 40 and summary.votes > 0 and summary.edits > 0
    assert summary.regenerated == await count(
        sessionmaker, "SELECT count(*) FROM message WHERE origin = 'regenerated'")
    assert summary.judged_battles == await count(
        sessionmaker, "SELECT count(*) FROM battle WHERE winner IS NOT NULL")
    assert 0.8 * 800 < summary.judged_battles < 800
    # 1 arena prompt + 2 answers per battle, a prompt + an answer per ordinary turn, plus
    # regenerated and edited siblings.
    assert summary.messages == 3 * 800 + 2 * 200 + summary.regenerated + summary.edits

    messages = {m["id"]: m for m in await fetch(sessionmaker, Message)}
    conversations = {c["id"]: c for c in await fetch(sessionmaker, Conversation)}
    for m in messages.values():
        parent = messages.get(m["parent_id"]) if m["parent_id"] is not None else None
        if m["role"] == "assistant":
            # Answers hang under a user message of the same conversation.
            assert parent is not None and parent["role"] == "user"
            assert parent["conversation_id"] == m["conversation_id"]
            assert m["model_id"] and m["status"] == "complete"
            if m["origin"] == "edited":
                assert m["author_id"] == conversations[m["conversation_id"]]["started_by_id"]
            else:
                assert m["finish_reason"] == "stop" and m["completion_tokens"] > 0
                assert 0 < m["ttft_ms"] <= m["total_ms"] and m["params"]["temperature"] >= 0
                assert m["prompt_tokens"] > 0 and m["served_model"]
        else:
            assert m["role"] == "user" and m["origin"] == "original"
            assert parent is None or (parent["role"] == "assistant"
                                      and parent["conversation_id"] == m["conversation_id"])
            assert m["author_id"] == conversations[m["conversation_id"]]["started_by_id"]
    assert {m["origin"] for m in messages.values()} == {"original", "arena", "regenerated",
                                                         "edited"}

    chats = {c["id"]: c for c in await fetch(sessionmaker, Chat)}
    users = {u["id"]: u for u in await fetch(sessionmaker, User)}
    for battle in await fetch(sessionmaker, BattleRow):
        a, b = messages[battle["answer_a_id"]], messages[battle["answer_b_id"]]
        prompt = messages[battle["prompt_id"]]
        assert prompt["role"] == "user" and a["parent_id"] == b["parent_id"] == prompt["id"]
        assert a["origin"] == b["origin"] == "arena"
        assert (a["model_id"], b["model_id"]) == (battle["model_a"], battle["model_b"])
        assert battle["model_a"] != battle["model_b"]
        conversation = conversations[prompt["conversation_id"]]
        assert battle["user_id"] == conversation["started_by_id"] == prompt["author_id"]
        assert battle["chat_id"] == conversation["chat_id"]
        assert (battle["winner"] is None) == (battle["voted_at"] is None)
        assert battle["strength"] is None or battle["winner"] in ("a", "b")
    for edit in await fetch(sessionmaker, AnswerEdit):
        original, edited = messages[edit["original_id"]], messages[edit["edited_id"]]
        assert original["origin"] == "original" and edited["origin"] == "edited"
        assert original["parent_id"] == edited["parent_id"]
        assert original["content"] != edited["content"]
        assert edited["author_id"] == edit["user_id"]
        assert conversations[original["conversation_id"]]["chat_id"] == edit["chat_id"]
    votes = await fetch(sessionmaker, Vote)
    by_message = {v["message_id"]: v["value"] for v in votes}
    for v in votes:
        m = messages[v["message_id"]]
        assert m["role"] == "assistant" and m["origin"] != "arena"
        assert v["user_id"] == conversations[m["conversation_id"]]["started_by_id"]
    for m in messages.values():
        if m["origin"] == "regenerated":  # one sibling got 👍, the other 👎
            siblings = [s for s in messages.values() if s["parent_id"] == m["parent_id"]
                        and s["role"] == "assistant"]
            assert sorted(by_message[s["id"]] for s in siblings) == [-1, 1]

    # Heads are messages of their own conversation; each chat has one open conversation.
    for c in conversations.values():
        assert messages[c["head_message_id"]]["conversation_id"] == c["id"]
        assert chats[c["chat_id"]]["telegram_id"] == users[c["started_by_id"]]["telegram_id"]
    open_chats = [c["chat_id"] for c in conversations.values() if c["closed_at"] is None]
    assert sorted(open_chats) == sorted({c["chat_id"] for c in conversations.values()})
    low, high = FAKE_TELEGRAM_IDS
    assert all(low <= u["telegram_id"] <= high for u in users.values())
    assert all(c["type"] == "private" for c in chats.values())
    texts = "\n".join(m["content"] for m in messages.values())
    assert "```python" in texts and "@example." in texts and "- **" in texts
    assert any("а" <= ch <= "я" for ch in texts)  # Russian too

    # Ids came from the database: the bot's own inserts continue without collisions.
    users_repo = UserRepository(sessionmaker)
    user, chat_row_id = await users_repo.touch(TelegramUser(42), 42, "private", None)
    conversations_repo = ConversationRepository(sessionmaker)
    conversation = await conversations_repo.active(chat_row_id, user.id)
    stored = await conversations_repo.add_user_message(conversation.id, user.id, "hi", 42, 1)
    assert user.id > max(users) and conversation.id > max(conversations)
    assert stored.id > max(messages)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


async def snapshot(sessionmaker) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "messages": [(m["role"], m["origin"], m["content"], m["model_id"], m["params"],
                      m["total_ms"], m["parent_id"], _utc(m["created_at"]))
                     for m in await fetch(sessionmaker, Message)],
        "battles": [(b["model_a"], b["model_b"], b["winner"], b["strength"], b["anonymous"],
                     b["prompt_id"], _utc(b["voted_at"]))
                    for b in await fetch(sessionmaker, BattleRow)],
        "users": [(u["telegram_id"], u["username"], u["first_name"], u["language_code"])
                  for u in await fetch(sessionmaker, User)],
    }


async def test_same_seed_same_data_on_postgres_and_sqlite(database_url, tmp_path):
    snapshots = []
    for url in (database_url, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
                f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"):
        await upgrade(url)
        engine = create_engine(url)
        seed = 8 if url.endswith("b.db") else 7
        await generate_demo_data(create_sessionmaker(engine), battles=300, seed=seed,
                                 until=UNTIL)
        snapshots.append(await snapshot(create_sessionmaker(engine)))
        await engine.dispose()
    postgres, sqlite, other_seed = snapshots
    assert postgres == sqlite
    assert postgres != other_seed
    created = [m[-1] for m in postgres["messages"]]
    assert UNTIL - timedelta(days=90) < min(created) and max(created) < UNTIL + timedelta(days=1)


async def judged(sessionmaker) -> list[Battle]:
    feedback = FeedbackRepository(sessionmaker)
    return [Battle(a, b, w) async for a, b, w in feedback.judged_battles()]


async def test_leaderboard_recovers_the_true_order(database_url):
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    summary = await generate_demo_data(sessionmaker, battles=3000, seed=11)
    battles = await judged(sessionmaker)
    await engine.dispose()
    assert 0.8 * 3000 < len(battles) < summary.judged_battles  # named battles are left out
    rows = leaderboard(battles, rounds=0)
    truth = summary.true_ratings
    assert [r.model for r in rows] == sorted(truth, key=truth.__getitem__, reverse=True)
    # Same scale (400·log10): the fitted gaps match the hidden ones.
    mean_fit = sum(r.rating for r in rows) / len(rows)
    mean_true = sum(truth.values()) / len(truth)
    assert max(abs((r.rating - mean_fit) - (truth[r.model] - mean_true)) for r in rows) < 60
    outcomes = {b.winner for b in battles}
    assert outcomes == {"a", "b", "tie", "both_bad"}


async def test_given_models_rank_in_their_order(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'models.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    models = ["strong", "медленная-модель", "weak"]
    summary: DemoSummary = await generate_demo_data(sessionmaker, battles=1500, seed=2,
                                                    models=models)
    rows = leaderboard(await judged(sessionmaker), rounds=0)
    await engine.dispose()
    assert [r.model for r in rows] == models
    assert summary.true_ratings == {"strong": 1300.0, "медленная-модель": 1000.0, "weak": 700.0}


async def test_arguments_are_checked(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    with pytest.raises(ValueError, match="at least two distinct"):
        await generate_demo_data(sessionmaker, battles=10, models=["only"])
    with pytest.raises(ValueError, match="battles"):
        await generate_demo_data(sessionmaker, battles=-1)
    summary = await generate_demo_data(sessionmaker, battles=0, users=3)
    assert (summary.users, summary.conversations, summary.messages) == (3, 0, 0)
    # A second run next to the first: fresh fake Telegram ids, no clashes.
    again = await generate_demo_data(sessionmaker, battles=20, users=3)
    assert again.users == 3 and again.battles == 20
    assert await count(sessionmaker, "SELECT count(*) FROM user_account") == 6
    await engine.dispose()
