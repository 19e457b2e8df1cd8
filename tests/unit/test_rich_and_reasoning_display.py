"""Rich-message detection, the fake's rich methods, reasoning frames and quotes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InputRichMessage

from bot.formatting import live_reasoning, reasoning_quote, utf16_len
from bot.streaming.pacer import pump
from bot.streaming.rich import RichGate, needs_rich, rich_markdown
from inference.protocol import Finished, ReasoningDelta, TextDelta, Usage
from tests.unit.test_fake_telegram import GROUP, USER, bot, chat, fake  # noqa: F401
from tests.unit.test_pacing_and_history import RecordingView


@pytest.mark.parametrize(("markdown", "rich"), [
    ("| a | b |\n|---|:-:|\n| 1 | 2 |", True),
    ("a | b\n--- | ---\n1 | 2", True),
    ("Einstein: $$E = mc^2$$", True),
    ("Display: \\[ \\int_0^1 x\\,dx \\]", True),
    ("Inline \\(x^2\\)", True),
    ("where $\\alpha$ is small", True),
    ("$x_1$ and $x_2$", True),
    ("It costs $5, or $10 on Sundays.", False),
    ("- one\n  - two\n    - three", True),
    ("1. one\n   1. two\n      1. three", True),
    ("- one\n  - two\n- back", False),
    ("> quoted\n> > nested", True),
    ("> just a quote", False),
    ("```\n| a | b |\n|---|---|\n$$x^2$$\n```", False),  # code is code
    ("Use `$x^2$` literally", False),
    ("**bold**, _italic_, [link](https://t.me)\n\n# Heading", False),
    ("a | b without a delimiter row", False),
])
def test_needs_rich(markdown, rich):
    assert needs_rich(markdown) is rich


def test_rich_markdown_quotes_the_reasoning_escaped_above_the_answer():
    source = rich_markdown("| a |\n|---|", "a*b_c\n\n$x$", "💭 Reasoning")
    assert source == "> **💭 Reasoning**\n> a\\*b\\_c\n>\n> \\$x\\$\n\n| a |\n|---|"
    assert rich_markdown("answer", "  ", "label") == "answer"


def test_the_gate_rests_after_a_refusal():
    now = [0.0]
    gate = RichGate(True, cooldown=60, clock=lambda: now[0])
    assert gate.open()
    gate.failed(TelegramBadRequest(method=None, message="nope"), "rich message")  # type: ignore[arg-type]
    assert not gate.open()
    now[0] = 61
    assert gate.open()
    assert not RichGate(False).open()


def test_quotes_are_bounded_and_marked_where_cut():
    reasoning = "word " * 1000
    quote = reasoning_quote(reasoning, "💭 Reasoning")
    assert quote.text.startswith("💭 Reasoning\nword word")
    assert quote.text.endswith("…") and len(quote.text) < 1100
    kinds = [(e.type, e.offset, e.length) for e in quote.entities]
    assert kinds == [("expandable_blockquote", 0, utf16_len(quote.text)),
                     ("bold", 0, utf16_len("💭 Reasoning"))]
    frame = live_reasoning("start " + "x" * 5000 + " the end", "💭 Thinking…")
    assert frame.text.startswith("💭 Thinking…\n…") and frame.text.endswith("the end")
    assert utf16_len(frame.text) < 1700


async def _thinking_then_answer():
    for i in range(30):
        await asyncio.sleep(0.005)
        yield ReasoningDelta(f"r{i} ")
    for i in range(30):
        await asyncio.sleep(0.005)
        yield TextDelta(f"t{i} ")
    yield Finished("stop", Usage(1, 60))


async def test_pacer_shows_reasoning_then_the_answer_and_keeps_them_apart():
    view = RecordingView()
    outcome = await pump(_thinking_then_answer(), view, interval=0.02)
    assert outcome.text == "".join(f"t{i} " for i in range(30))
    assert outcome.reasoning == "".join(f"r{i} " for i in range(30)).strip()
    assert outcome.ttft is not None
    phases = ["answer" if text else "thinking" for text in view.frames]
    assert phases[0] == "thinking" and "answer" in phases
    assert phases == sorted(phases, key=lambda p: p == "answer")  # never back to thinking
    # Thinking frames carry the reasoning; answer frames carry it too, for the quote.
    assert all(r.startswith("r0 ") for r in view.reasoning_frames)


async def test_fake_send_rich_message_is_strict(fake, bot, chat):  # noqa: F811
    sent = await bot.send_rich_message(chat_id=chat,
                                       rich_message=InputRichMessage(markdown="| a |\n|---|"))
    assert sent.rich_message is not None and sent.text is None
    [shown] = fake.bot_messages(chat)
    assert shown.rich == {"markdown": "| a |\n|---|"}
    with pytest.raises(TelegramBadRequest, match="exactly one of"):
        await bot.send_rich_message(chat_id=chat, rich_message=InputRichMessage(
            markdown="x", html="<b>x</b>"))
    with pytest.raises(TelegramBadRequest, match="exactly one of"):
        await bot.send_rich_message(chat_id=chat, rich_message=InputRichMessage())
    with pytest.raises(TelegramBadRequest, match="too long"):
        await bot.send_rich_message(chat_id=chat,
                                    rich_message=InputRichMessage(markdown="x" * 32769))
    with pytest.raises(TelegramBadRequest, match="text is empty"):
        await bot.send_rich_message(chat_id=chat, rich_message=InputRichMessage(markdown=" "))
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/bot{fake.token}/sendRichMessage"
        async with http.post(url, json={"chat_id": chat}) as resp:
            assert (await resp.json())["description"] == "Bad Request: rich_message is empty"


async def test_fake_rich_drafts_are_private_only(fake, bot, chat):  # noqa: F811
    rich = InputRichMessage(markdown="$$x^2$$")
    assert await bot.send_rich_message_draft(chat_id=chat, draft_id=7, rich_message=rich)
    [frame] = fake.drafts(chat)
    assert frame.rich == {"markdown": "$$x^2$$"} and frame.text == "$$x^2$$"
    fake.user_sends("hi", chat_id=GROUP, user_id=5, chat_type="supergroup")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_rich_message_draft(chat_id=GROUP, draft_id=7, rich_message=rich)
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_ID_INVALID"):
        await bot.send_rich_message_draft(chat_id=chat, draft_id=0, rich_message=rich)
