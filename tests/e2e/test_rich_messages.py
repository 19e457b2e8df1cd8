"""RICH_MESSAGES=auto: answers with a table or math go out as Bot API 10.1 rich messages in
private chats, and fall back to entity messages when Telegram refuses one."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import labels, rows
from tests.fakes.openai_api import Thinking
from tests.harness import running_bot

PRIVATE = 1001
TABLE = ("Prices:\n\n| Fruit | Price |\n|---|---|\n| Apple | 1 |\n| Pear | 2 |\n\n"
         + " ".join(f"note{i}" for i in range(60)) + "\n\nThat is all.")


@pytest.fixture
async def rich_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                           redis_prefix, RICH_MESSAGES="auto") as settings:
        yield settings


async def test_an_answer_with_a_table_is_a_rich_message_with_buttons_and_its_delivery(
    rich_bot, telegram, models, db
):
    models.set_reply("alpha-served", Thinking("Look up the prices.", TABLE))
    models.tokens_per_chunk, models.chunk_delay = 2, 0.02  # frames while the notes stream
    telegram.user_sends("Prices?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.text is None and answer.rich is not None
    source = answer.rich["markdown"]
    assert source.endswith(TABLE)
    assert source.startswith("> **💭 Reasoning**\n> Look up the prices.")
    assert "👍" in " ".join(labels(answer))
    # Frames went rich once the table showed.
    assert any(d.rich is not None and "| Fruit |" in d.text for d in telegram.drafts(PRIVATE))
    [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    assert stored["content"] == TABLE and stored["reasoning"] == "Look up the prices."
    deliveries = await rows(db, "SELECT * FROM message_delivery WHERE message_id = :id", 1,
                            id=stored["id"])
    assert [d["tg_message_id"] for d in deliveries] == [answer.message_id]


async def test_plain_answers_stay_entity_messages(rich_bot, telegram, models):
    models.set_reply("alpha-served", "Just **text**, costing $5 or $10.")
    telegram.user_sends("Hi", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.rich is None and answer.text == "Just text, costing $5 or $10."
    assert not telegram.calls("sendRichMessage")


async def test_a_refused_rich_message_falls_back_to_entities_and_rich_rests_a_while(
    rich_bot, telegram, models, db
):
    telegram.fail_next("sendRichMessageDraft", error_code=400,
                       description="Bad Request: METHOD_NOT_SUPPORTED", times=100)
    telegram.fail_next("sendRichMessage", error_code=400,
                       description="Bad Request: METHOD_NOT_SUPPORTED")
    models.set_reply("alpha-served", "Euler: $$e^{i\\pi} + 1 = 0$$")
    telegram.user_sends("Math?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.rich is None and answer.text.startswith("Euler:")
    assert any(r.method == "sendRichMessage" and r.error_code == 400
               for r in telegram.requests)
    [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    deliveries = await rows(db, "SELECT * FROM message_delivery WHERE message_id = :id", 1,
                            id=stored["id"])
    assert [d["tg_message_id"] for d in deliveries] == [answer.message_id]

    # The next answer that needs rich does not try again for now.
    tried = len([r for r in telegram.requests if r.method.startswith("sendRich")])
    telegram.user_sends("Again?", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    assert len([r for r in telegram.requests if r.method.startswith("sendRich")]) == tried


async def test_off_by_default(bot, telegram, models):
    models.set_reply("alpha-served", TABLE)
    telegram.user_sends("Prices?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert answer.rich is None and "Apple | 1" in answer.text  # telegramify's text table
    assert not [r for r in telegram.requests if r.method.startswith("sendRich")]
