"""/leaderboard in the running bot: a monospace table with model titles and a PNG chart."""

from __future__ import annotations

import asyncio

import pytest

import bot.handlers.leaderboard as leaderboard_handler
from storage.db import create_engine, create_sessionmaker
from storage.demo_data import DemoSummary, generate_demo_data
from tests.e2e.helpers import rows
from tests.harness import running_bot

CHAT = 6001
PNG = b"\x89PNG\r\n\x1a\n"
# alpha and beta are in the test catalogue (titles "Alpha" and "Beta"); "retired" is not, so
# it shows under its id. Ratings: alpha strongest, retired weakest.
MODELS = ["alpha", "beta", "retired"]


@pytest.fixture(autouse=True)
def quick_fit(monkeypatch):
    """Fewer bootstrap rounds: these tests are about the bot, not the intervals."""
    monkeypatch.setattr(leaderboard_handler, "ROUNDS", 20)


async def add_battles(database_url: str, battles: int, seed: int = 3) -> DemoSummary:
    engine = create_engine(database_url)
    try:
        return await generate_demo_data(create_sessionmaker(engine), battles=battles,
                                        seed=seed, users=5, models=MODELS)
    finally:
        await engine.dispose()


def entity_text(text: str, entity: dict) -> str:
    """The entity's part of `text` (offsets count UTF-16 code units)."""
    units = text.encode("utf-16-le")
    start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
    return units[start:end].decode("utf-16-le")


async def ask(telegram, chat_id: int = CHAT, count: int = 2, **who):
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends("/leaderboard", chat_id=chat_id, **who)
    messages = await telegram.wait_for_bot_messages(chat_id, before + count, timeout=20)
    return messages[before:]


async def judged_anonymous(db) -> int:
    [row] = await rows(db, "SELECT count(*) AS n FROM battle "
                           "WHERE winner IS NOT NULL AND anonymous")
    return row["n"]


async def test_without_judged_battles_one_short_message(bot, telegram):
    [reply] = await ask(telegram, count=1)
    assert reply.text == ("No arena battles have been judged yet. "
                          "Try /arena and vote for the better answer!")
    [reply] = await ask(telegram, CHAT + 1, count=1, language_code="ru")
    assert reply.text.startswith("На арене ещё нет оценённых поединков.")
    await asyncio.sleep(0.3)  # nothing else follows
    assert len(telegram.bot_messages(CHAT)) == 1
    assert all(m.photo is None for m in telegram.bot_messages(CHAT))


async def test_table_with_titles_and_a_png_chart(bot, telegram, database_url, db):
    await add_battles(database_url, 400)
    judged = await judged_anonymous(db)
    table, chart = await ask(telegram)

    assert table.text.startswith(f"🏆 Arena leaderboard: 3 models, {judged} judged anonymous "
                                 "battles.")
    [pre] = [e for e in table.entities if e["type"] == "pre"]
    block = entity_text(table.text, pre)
    assert table.text.endswith(block)
    header, *lines = block.splitlines()
    assert header.split()[:3] == ["rank", "model", "rating"]
    assert [line.split()[1] for line in lines] == ["Alpha", "Beta", "retired"]
    assert "alpha" not in block  # titles, not ids

    assert chart.photo is not None and chart.photo["content"].startswith(PNG)
    assert chart.photo["file_name"] == "leaderboard.png"
    assert chart.photo["width"] == 1280 and 200 < chart.photo["height"] < 1280
    assert chart.caption == "Ratings with 95% intervals"
    assert "upload_photo" in telegram.chat_actions(CHAT)

    # In Russian, from another chat (the cached result, the same numbers).
    table_ru, chart_ru = await ask(telegram, CHAT + 1, language_code="ru")
    assert table_ru.text.startswith(f"🏆 Рейтинг арены: моделей — 3, оценённых анонимных "
                                    f"поединков — {judged}.")
    assert entity_text(table_ru.text, table_ru.entities[-1]) == block
    assert chart_ru.caption == "Рейтинги с 95% интервалами"
    assert chart_ru.photo["content"] == chart.photo["content"]


async def test_result_is_cached_briefly(monkeypatch, tmp_path, telegram, models, database_url,
                                        redis_prefix, db):
    monkeypatch.setattr(leaderboard_handler, "CACHE_SECONDS", 1.5)
    computed = 0
    real = leaderboard_handler.compute_board

    async def counting(*args, **kwargs):
        nonlocal computed
        computed += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(leaderboard_handler, "compute_board", counting)
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
        await add_battles(database_url, 100)
        first = await judged_anonymous(db)
        # A burst: one computation serves everyone.
        for _ in range(3):
            telegram.user_sends("/leaderboard", chat_id=CHAT)
        burst = await telegram.wait_for_bot_messages(CHAT, 6, timeout=20)
        assert computed == 1
        assert {m.text.split(".")[0] for m in burst if m.text} == {
            f"🏆 Arena leaderboard: 3 models, {first} judged anonymous battles"}
        await add_battles(database_url, 100, seed=4)
        later = await judged_anonymous(db)
        assert later > first
        table, _ = await ask(telegram)
        assert f"{first} judged" in table.text and computed == 1  # still cached
        await asyncio.sleep(1.6)
        table, _ = await ask(telegram)
        assert f"{later} judged" in table.text and computed == 2


async def test_a_failure_is_one_friendly_line(bot, telegram, database_url, monkeypatch):
    await add_battles(database_url, 50)

    def broken(*args, **kwargs):
        raise RuntimeError("boom: secret internals")

    import storage.leaderboard  # the handler takes the fit from here when it runs

    real = storage.leaderboard.leaderboard
    monkeypatch.setattr(storage.leaderboard, "leaderboard", broken)
    [reply] = await ask(telegram, count=1)
    assert reply.text == "⚠️ I couldn't build the leaderboard right now. Please try again later."
    await asyncio.sleep(0.3)
    assert len(telegram.bot_messages(CHAT)) == 1
    # The failure is not cached: once the fit works again, so does the command.
    monkeypatch.setattr(storage.leaderboard, "leaderboard", real)
    table, chart = await ask(telegram)
    assert table.text.startswith("🏆 Arena leaderboard") and chart.photo is not None


async def test_works_in_groups_too(bot, telegram, database_url):
    await add_battles(database_url, 60)
    group = -100777
    telegram.user_sends("/leaderboard@chatmux_test_bot", chat_id=group, user_id=31,
                        chat_type="supergroup")
    table, chart = await telegram.wait_for_bot_messages(group, 2, timeout=20)
    assert table.text.startswith("🏆 Arena leaderboard") and chart.photo is not None


# --- the pieces, without the bot ----------------------------------------------------------
class _Feedback:
    def __init__(self, battles: list[tuple[str, str, str]]) -> None:
        self.battles = battles

    async def judged_battles(self, *, anonymous_only: bool = True):
        assert anonymous_only
        for battle in self.battles:
            yield battle


class _Registry:
    def title(self, model_id: str | None) -> str:
        return f"Model {model_id}"


async def test_many_models_show_the_top_forty(monkeypatch):
    names = [f"m{i:02d}" for i in range(45)]
    battles = [(a, b, "a" if i % 3 else "tie") for i, (a, b) in
               enumerate((a, b) for a in names for b in names if a < b)]
    board = await leaderboard_handler.compute_board(_Feedback(battles), _Registry())
    assert board.models == 45 and len(board.rows) == leaderboard_handler.MAX_ROWS == 40
    assert board.battles == len(battles)
    assert all(r.model.startswith("Model m") for r in board.rows)
    assert board.png is not None and board.png.startswith(PNG)
    empty = await leaderboard_handler.compute_board(_Feedback([]), _Registry())
    assert (empty.rows, empty.png, empty.battles) == ([], None, 0)


async def test_cache_expires_and_does_not_keep_failures():
    now = [0.0]
    cache = leaderboard_handler.BoardCache(60, clock=lambda: now[0])
    calls = 0

    async def compute():
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("database down")
        return leaderboard_handler.Board([], None, calls, 0)

    assert (await cache.get(compute)).battles == 1
    now[0] = 59.9
    assert cache.fresh and (await cache.get(compute)).battles == 1
    now[0] = 60.0
    assert not cache.fresh and (await cache.get(compute)).battles == 2
    now[0] = 121.0
    with pytest.raises(RuntimeError):
        await cache.get(compute)
    assert (await cache.get(compute)).battles == 4
