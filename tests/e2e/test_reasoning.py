"""Reasoning models through `chatmux run`: thinking shown live, then collapsed above the
answer; stored apart; never sent back to the model; never exported as the answer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.db import create_engine
from storage.exports import ExportOptions, export
from tests.e2e.helpers import button, rows, toast
from tests.fakes.openai_api import Thinking

PRIVATE = 1001
GROUP = -1007002
REASONING = ("The user asks for two plus two. Adding two and two gives four. "
             + " ".join(f"check{i}" for i in range(40)))
ANSWER = "The answer is **4**."


def span(text: str, start: int, stop: int | None = None) -> str:
    """text[start:stop] in UTF-16 units, as entity offsets count."""
    units = text.encode("utf-16-le")
    return units[2 * start:None if stop is None else 2 * stop].decode("utf-16-le")


def entity(message, kind: str) -> dict | None:
    return next((e for e in message.entities if e["type"] == kind), None)


@pytest.mark.parametrize("shape", ["reasoning", "reasoning_content", "think"])
async def test_reasoning_is_shown_live_then_collapsed_stored_apart_and_not_sent_back(
    bot, telegram, models, db, tmp_path, database_url, shape
):
    models.set_reply("alpha-served", Thinking(REASONING, ANSWER, shape))
    models.tokens_per_chunk = 3
    models.chunk_delay = 0.01
    telegram.user_sends("What is 2+2?", chat_id=PRIVATE)
    [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1)

    # Live: frames of the thinking (a label, then the end of the reasoning in a quote),
    # then frames of the answer.
    drafts = telegram.drafts(PRIVATE)
    thinking = [d for d in drafts if d.text.startswith("💭 Thinking…")]
    assert thinking and thinking[0] is next(d for d in drafts if d.text)
    assert any("check" in d.text for d in thinking)
    assert all(any(e["type"] == "blockquote" for e in d.entities)
               for d in thinking if "\n" in d.text)
    # Once the answer shows, the thinking does not come back (a short answer may go straight
    # to the final message: the end of a stream never waits for a frame).
    answering = [i for i, d in enumerate(drafts) if "The answer" in d.text]
    assert all(not d.text.startswith("💭 Thinking") for d in drafts[answering[0]:]
               ) if answering else True

    # Final: the reasoning in a collapsed quote above the answer.
    assert answer.text.startswith("💭 Reasoning\nThe user asks for two plus two.")
    assert answer.text.endswith("\n\nThe answer is 4.")
    quote = entity(answer, "expandable_blockquote")
    assert quote is not None and quote["offset"] == 0
    assert span(answer.text, quote["length"]).strip() == "The answer is 4."
    bold = [span(answer.text, e["offset"], e["offset"] + e["length"]) for e in answer.entities
            if e["type"] == "bold"]
    assert bold == ["💭 Reasoning", "4"]

    [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    assert stored["content"] == ANSWER
    assert stored["reasoning"] == REASONING
    assert stored["status"] == "complete"

    # The next turn: the history carries the answer, never the reasoning.
    models.set_reply("alpha-served", "Sure.")
    telegram.user_sends("And 3+3?", chat_id=PRIVATE)
    await telegram.wait_for_bot_messages(PRIVATE, 2)
    body = models.chat_requests()[-1]
    assert body["messages"][1:] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert "check1" not in json.dumps(body) and "<think>" not in json.dumps(body)

    # Liked, it is a training row: with the answer's text, not its reasoning.
    query = telegram.user_presses(PRIVATE, answer.message_id, button(answer, "👍"))
    await toast(telegram, query)
    await rows(db, "SELECT * FROM vote", 1)
    engine = create_engine(database_url)
    try:
        for fmt in ("kto", "sft"):
            out = tmp_path / f"{fmt}.jsonl"
            await export(async_sessionmaker(engine), ExportOptions(format=fmt), out)
            dump = out.read_text()
            assert "The answer is **4**." in dump
            assert "check1" not in dump and "two plus two" not in dump
    finally:
        await engine.dispose()


async def test_a_model_that_only_thinks_gets_the_empty_answer_notice_and_keeps_its_reasoning(
    bot, telegram, models, db
):
    models.set_reply("alpha-served", "<think>\nHmm, let me think about this for a while")
    models.tokens_per_chunk, models.chunk_delay = 1, 0.03
    telegram.user_sends("Hard question", chat_id=PRIVATE)
    [notice] = await telegram.wait_for_bot_messages(PRIVATE, 1)
    assert "empty" in notice.text.lower()
    [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    assert stored["content"] == "" and stored["status"] == "empty"
    assert stored["reasoning"] == "Hmm, let me think about this for a while"
    assert any(d.text.startswith("💭 Thinking…") for d in telegram.drafts(PRIVATE))


async def test_a_long_answer_has_the_reasoning_in_its_first_part_only(bot, telegram, models, db):
    long_answer = "\n\n".join(f"Paragraph {i}: " + "word " * 60 for i in range(20))
    models.set_reply("alpha-served", Thinking("x " * 600, long_answer))
    telegram.user_sends("Tell me a lot", chat_id=PRIVATE)
    await telegram.wait_for(lambda: any(m.reply_markup for m in telegram.bot_messages(PRIVATE)))
    [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
    # The parts' delivery rows are written once the last part is out: wait for them.
    deliveries = await rows(db, "SELECT * FROM message_delivery WHERE message_id = :id",
                            2, id=stored["id"])
    parts = [m for m in telegram.bot_messages(PRIVATE)
             if m.message_id in {d["tg_message_id"] for d in deliveries}]
    assert len(parts) >= 2
    assert entity(parts[0], "expandable_blockquote") is not None
    assert all(entity(p, "expandable_blockquote") is None for p in parts[1:])
    # The quote is shortened (all of it is stored), and every part fits a message.
    quoted = entity(parts[0], "expandable_blockquote")["length"]
    assert quoted < 1100 and span(parts[0].text, 0, quoted).endswith("…")
    assert stored["reasoning"] == ("x " * 600).strip()
    assert all(len(p.text) <= 4096 for p in parts)


async def test_in_groups_thinking_shows_typing_and_the_answer_has_the_quote(
    bot, telegram, models, db
):
    models.set_reply("alpha-served", Thinking(REASONING, ANSWER))
    models.chunk_delay = 0.01
    telegram.user_sends("@chatmux_test_bot what is 2+2?", chat_id=GROUP, user_id=71,
                        chat_type="supergroup", chat_title="Team")
    await telegram.wait_for(lambda: any(
        (m.text or "").endswith("The answer is 4.") and m.reply_markup
        for m in telegram.bot_messages(GROUP)))
    [answer] = telegram.bot_messages(GROUP)
    assert answer.text.startswith("💭 Reasoning\n")
    assert entity(answer, "expandable_blockquote")["offset"] == 0
    assert "typing" in telegram.chat_actions(GROUP)
    # No message ever showed the thinking alone (it would be a stub if no answer came).
    edits = [r.params.get("text", "") for r in telegram.requests
             if r.method in ("sendMessage", "editMessageText")]
    assert not any(text.startswith("💭 Thinking") for text in edits)
