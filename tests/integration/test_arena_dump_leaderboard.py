"""The arena dump and /leaderboard agree: a Bradley–Terry fit of `chatmux export --format arena`
gives the leaderboard's ratings, ties included (as in LMSYS releases)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from datetime import timedelta

from storage.db import create_engine, create_sessionmaker
from storage.leaderboard import Battle, leaderboard
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser, UserRepository

# LMSYS spelling in the dump → storage spelling.
WINNERS = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "both_bad"}


async def store_battles(url: str, count: int) -> list[Battle]:
    """Judged battles among three models, a third of them ties or "both bad"; returns those
    whose answers both finished."""
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    users, convs = UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    feedback = FeedbackRepository(sessionmaker)
    rng = random.Random(7)
    strength = {"strong": 0.7, "middle": 0.5, "weak": 0.3}
    stored = []
    for n in range(count):
        user, chat = await users.touch(TelegramUser(100 + n % 5), 100 + n % 5, "private", None)
        conversation = await convs.active(chat, user.id)
        a, b = rng.sample(sorted(strength), 2)
        prompt = await convs.add_user_message(conversation.id, user.id, f"q{n}", 100 + n % 5,
                                              n + 1)
        # A few answers were cut off mid-way: such battles are in neither the dump nor the fit.
        status = "cut" if n % 25 == 3 else "complete"
        answer_a = await convs.add_answer(prompt, AnswerRecord(f"x{n}", a, a, status=status),
                                          origin="arena")
        answer_b = await convs.add_answer(prompt, AnswerRecord(f"y{n}", b, b), origin="arena",
                                          head="keep")
        battle = await feedback.create_battle(chat_row_id=chat, user_id=user.id, prompt=prompt,
                                              answer_a=answer_a, answer_b=answer_b)
        roll = rng.random()
        # Ties mostly between the strong model and the others: leaving them out moves ratings.
        if roll < 0.35 and "strong" in (a, b):
            winner = rng.choice(["tie", "tie", "both_bad"])
        else:
            winner = "a" if rng.random() < 0.5 + strength[a] - strength[b] else "b"
        await feedback.vote_battle(battle.id, user.id, winner, timedelta(minutes=5))
        if status == "complete":
            stored.append(Battle(a, b, winner))
    await engine.dispose()
    return stored


def dump(database_url: str, out, *flags: str) -> list[Battle]:
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url, "EXPORT_SALT": "s"}
    # The test's models are in no catalogue: their answers count as restricted.
    result = subprocess.run(
        [sys.executable, "-m", "bot", "export", "--format", "arena", "--out", str(out),
         "--include-restricted", *flags],
        cwd=out.parent, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return [Battle(r["model_a"], r["model_b"], WINNERS[r["winner"]]) for r in rows if r["anony"]]


def fitted(battles: list[Battle]) -> dict[str, float]:
    return {row.model: row.rating for row in leaderboard(battles, rounds=0)}


def test_a_bradley_terry_fit_of_the_arena_dump_matches_the_leaderboard(database_url, tmp_path):
    stored = asyncio.run(store_battles(database_url, 150))
    assert len(stored) == 144
    assert sum(b.winner in ("tie", "both_bad") for b in stored) >= 20

    async def shown_on_leaderboard() -> list[Battle]:
        engine = create_engine(database_url)
        try:  # what /leaderboard and `chatmux leaderboard` fit
            feedback = FeedbackRepository(create_sessionmaker(engine))
            return [Battle(a, b, w) async for a, b, w in feedback.judged_battles()]
        finally:
            await engine.dispose()

    board = fitted(asyncio.run(shown_on_leaderboard()))
    from_dump = dump(database_url, tmp_path / "battles.jsonl")  # the default dump
    assert len(from_dump) == len(stored)
    assert from_dump.count(Battle("strong", "middle", "tie")) == stored.count(
        Battle("strong", "middle", "tie"))
    ours = fitted(from_dump)
    assert ours.keys() == board.keys()
    for model, rating in board.items():
        assert abs(ours[model] - rating) < 1e-6, (model, ours[model], rating)

    # Ties can still be left out on request; then the fit no longer matches the leaderboard.
    decisive = dump(database_url, tmp_path / "decisive.jsonl", "--exclude-ties")
    assert {b.winner for b in decisive} == {"a", "b"}
    assert len(decisive) == sum(b.winner in ("a", "b") for b in stored)
    assert max(abs(fitted(decisive)[m] - board[m]) for m in board) > 5
