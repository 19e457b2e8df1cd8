"""Odd characters from a model (or a user) are cleaned once: shown and stored, never lost."""

from __future__ import annotations

import io

from tests.e2e.helpers import labels, rows

PRIVATE = 6001
GROUP = -100600


async def test_an_answer_with_nul_and_control_characters_is_shown_and_stored(
    bot, telegram, models, db
):
    models.set_reply("alpha-served", "Hello\x00 world\x07!\r\nSecond\tline")
    telegram.user_sends("say something odd", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text == "Hello world!\nSecond\tline"
    assert labels(answer)[:2] == ["👍", "👎"]
    [row] = await rows(db, "SELECT content, status FROM message WHERE role = 'assistant'", 1)
    assert (row["content"], row["status"]) == ("Hello world!\nSecond\tline", "complete")


async def test_a_lone_surrogate_becomes_a_replacement_character(bot, telegram, models, db):
    models.set_reply("alpha-served", ["broken ", "\ud800", " half"])
    telegram.user_sends("say something broken", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text == "broken \ufffd half"
    [row] = await rows(db, "SELECT content FROM message WHERE role = 'assistant'", 1)
    assert row["content"] == "broken \ufffd half"


async def test_a_surrogate_pair_split_across_chunks_is_one_character(bot, telegram, models, db):
    models.chunk_delay = 0.15  # a draft frame is shown between the two halves
    models.set_reply("alpha-served", ["smile ", "\ud83d", "\ude00", " done"])
    telegram.user_sends("smile please", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text == "smile 😀 done"
    frames = [d.text for d in telegram.drafts(PRIVATE)]
    assert frames[0] == "smile"  # shown while the second half was awaited: held back whole
    assert not any("\ufffd" in f for f in frames)
    [row] = await rows(db, "SELECT content FROM message WHERE role = 'assistant'", 1)
    assert row["content"] == "smile 😀 done"
    # The next turn sends the stored answer back to the model as it was shown.
    telegram.user_sends("again", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert models.chat_requests()[-1]["messages"][2] == {"role": "assistant",
                                                        "content": "smile 😀 done"}


async def test_odd_characters_in_a_group_answer_edited_in_place(bot, telegram, models, db):
    models.tokens_per_chunk = 1
    models.chunk_delay = 0.05
    models.set_reply("alpha-served", ["one ", "\x00two ", "\ud83d", "\ude00 ", "three \udfff"])
    telegram.user_sends("@chatmux_test_bot go", chat_id=GROUP, user_id=7, chat_type="group")
    await telegram.wait_for(
        lambda: (m := telegram.bot_messages(GROUP)) and labels(m[-1])[:1] == ["👍"])
    [answer] = telegram.bot_messages(GROUP)
    assert answer.text == "one two 😀 three \ufffd"
    [row] = await rows(db, "SELECT content FROM message WHERE role = 'assistant'", 1)
    assert row["content"] == "one two 😀 three \ufffd"


async def test_console_user_text_with_nul_and_a_stray_surrogate_is_stored_and_answered(
    monkeypatch, tmp_path, models, database_url
):
    """The console reads a terminal, where a NUL can be typed and undecodable bytes arrive as
    lone surrogates (surrogateescape): the user's message is kept, cleaned."""
    from bot.app import build_app, build_dispatcher
    from bot.console import run_console
    from bot.settings import load_settings
    from tests.harness import write_catalogue

    for key, value in {"DATABASE_URL": database_url, "ALPHA_KEY": "sk-test-alpha",
                       "MODELS_FILE": str(write_catalogue(tmp_path / "models.yaml", models)),
                       "DRAFT_INTERVAL": "0.05"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    app = await build_app(load_settings())

    async def lines():
        yield "tab\there nul\x00 and \udcff byte\n"

    out = io.StringIO()
    try:
        await run_console(build_dispatcher(app), lines=lines(), out=out, language_code="en")
        async with app.engine.connect() as conn:
            import sqlalchemy as sa
            stored = (await conn.execute(sa.text(
                "SELECT role, content FROM message ORDER BY id"))).all()
    finally:
        await app.aclose()
    assert [tuple(r) for r in stored] == [
        ("user", "tab\there nul and \ufffd byte"),
        ("assistant", "[alpha-served] tab\there nul and \ufffd byte"),
    ]
    assert "Something went wrong" not in out.getvalue()
