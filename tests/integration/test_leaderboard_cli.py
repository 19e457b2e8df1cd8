"""`chatmux leaderboard` over battles stored by the same code the bot uses."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from datetime import timedelta

from storage.db import create_engine, create_sessionmaker
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser, UserRepository


async def store_battles(url: str, count: int) -> None:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    users, convs = UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    feedback = FeedbackRepository(sessionmaker)
    rng = random.Random(3)
    strength = {"strong": 0.8, "middle": 0.5, "weak": 0.2}
    user, chat = await users.touch(TelegramUser(1), 1, "private", None)
    conversation = await convs.active(chat, user.id)
    for n in range(count):
        a, b = rng.sample(sorted(strength), 2)
        prompt = await convs.add_user_message(conversation.id, user.id, f"q{n}", 1, n + 1)
        answer_a = await convs.add_answer(prompt, AnswerRecord("x", a, a), origin="arena")
        answer_b = await convs.add_answer(prompt, AnswerRecord("y", b, b), origin="arena",
                                          head="keep")
        battle = await feedback.create_battle(chat_row_id=chat, user_id=user.id, prompt=prompt,
                                              answer_a=answer_a, answer_b=answer_b)
        winner = "a" if rng.random() < 0.5 + strength[a] - strength[b] else "b"
        await feedback.vote_battle(battle.id, user.id, winner, timedelta(minutes=5))
    await engine.dispose()


async def test_leaderboard_command_ranks_the_stored_battles(database_url, tmp_path):
    await store_battles(database_url, 120)
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "leaderboard", "--rounds", "100"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "rating" in lines[0] and "95% CI" in lines[0]
    order = [line.split()[1] for line in lines[1:]]
    assert order == ["strong", "middle", "weak"]
