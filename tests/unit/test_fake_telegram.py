"""Tests for the fake Telegram Bot API server, driven through a real aiogram ``Bot``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
)

from tests.fakes.telegram import params as telegram_params
from tests.fakes.telegram_api import FakeTelegram, utf16_len

pytestmark = pytest.mark.timeout(10)

USER = 1001
GROUP = -100500
NOT_MODIFIED = "message is not modified"


class _Session(AiohttpSession):
    """Real aiogram session minus the 250 ms sleep in ``close()`` (keeps the suite fast)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    api = TelegramAPIServer.from_base(fake.base_url)
    return Bot(token or fake.token, session=_Session(api=api))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()
    assert not server.internal_errors


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    b = make_bot(fake)
    yield b
    await b.session.close()


@pytest.fixture
def chat(fake: FakeTelegram) -> int:
    """A private chat the bot knows about (the user wrote first)."""
    fake.user_sends("hi", chat_id=USER)
    return USER


def keyboard(*data: str) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(text=d, callback_data=d) for d in data]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


# --- basics ------------------------------------------------------------------------------
async def test_get_me_wrong_token_and_unknown_method(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "chatmux_test_bot", True)
    intruder = make_bot(fake, "999:WRONG")
    with pytest.raises(TelegramUnauthorizedError):
        await intruder.get_me()
    await intruder.session.close()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/bot{fake.token}/sendTelepathy") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        # method names are case-insensitive; JSON bodies and query strings work too
        async with http.post(f"{fake.base_url}/bot{fake.token}/GETME") as resp:
            assert (await resp.json())["result"]["username"] == "chatmux_test_bot"


async def test_params_from_json_body_and_query_string(fake: FakeTelegram, chat: int) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/bot{fake.token}/sendMessage"
        async with http.post(url, json={"chat_id": chat, "text": "123"}) as resp:
            assert (await resp.json())["result"]["text"] == "123"  # stays a string
        async with http.get(url, params={"chat_id": str(chat), "text": "true"}) as resp:
            assert (await resp.json())["result"]["text"] == "true"
    assert [m.text for m in fake.bot_messages(chat)] == ["123", "true"]


async def test_send_edit_round_trip_and_not_modified(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    sent = await bot.send_message(chat, "draft", reply_markup=keyboard("a"))
    user_msg_id = fake.chat_messages(chat)[0].message_id
    assert sent.message_id == user_msg_id + 1  # one counter per chat for user and bot
    assert sent.from_user is not None and sent.from_user.id == fake.bot_id
    edited = await bot.edit_message_text(
        "final", chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("a")
    )
    assert isinstance(edited, Message) and edited.text == "final"
    with pytest.raises(TelegramBadRequest, match=NOT_MODIFIED):
        await bot.edit_message_text(
            "final", chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    # whitespace-only changes are trimmed away by Telegram: still "not modified"
    with pytest.raises(TelegramBadRequest, match=NOT_MODIFIED):
        await bot.edit_message_text(
            "final \n", chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    [shown] = fake.bot_messages(chat)
    assert (shown.text, shown.edits, shown.reply_markup) == (
        "final",
        1,
        {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]},
    )
    assert [m.from_bot for m in fake.chat_messages(chat)] == [False, True]


async def test_edit_without_markup_removes_keyboard(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    sent = await bot.send_message(chat, "pick", reply_markup=keyboard("x", "y"))
    await bot.edit_message_text("pick", chat_id=chat, message_id=sent.message_id)
    assert fake.bot_messages(chat)[0].reply_markup is None
    with pytest.raises(TelegramBadRequest, match=NOT_MODIFIED):
        await bot.edit_message_reply_markup(chat_id=chat, message_id=sent.message_id)
    await bot.edit_message_reply_markup(
        chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("z")
    )
    assert fake.bot_messages(chat)[0].reply_markup == {
        "inline_keyboard": [[{"text": "z", "callback_data": "z"}]]
    }
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=chat, message_id=999)
    user_msg = fake.chat_messages(chat)[0].message_id
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=chat, message_id=user_msg)


async def test_chat_reply_and_delete_errors(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "who?")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(chat, " \n ")
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(chat, "re", reply_to_message_id=555)
    user_msg = fake.chat_messages(chat)[0].message_id
    reply = await bot.send_message(chat, "re", reply_to_message_id=user_msg)
    assert reply.reply_to_message is not None and reply.reply_to_message.text == "hi"
    assert await bot.delete_message(chat, reply.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(chat, reply.message_id)
    assert [m.text for m in fake.chat_messages(chat)] == ["hi"]
    fake.user_blocks_bot(chat)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(chat, "still there?")


# --- length limits -----------------------------------------------------------------------
async def test_4096_limit(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    await bot.send_message(chat, "a" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(chat, "a" * 4097)
    # the limit applies after entity parsing: markup does not count
    await bot.send_message(chat, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    assert len(fake.bot_messages(chat)) == 2


async def test_4096_limit_counts_utf16_units(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    assert utf16_len("😀") == 2 and utf16_len("aé") == 2
    await bot.send_message(chat, "😀" * 2048)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(chat, "😀" * 2049)
    assert fake.bot_messages(chat)[0].text == "😀" * 2048


# --- formatting --------------------------------------------------------------------------
async def test_html_parse_mode(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    msg = await bot.send_message(
        chat, '😀 <b>bold</b> &lt;<a href="https://example.org">x</a>', parse_mode="HTML"
    )
    assert msg.text == "😀 bold <x"
    assert [(e.type, e.offset, e.length) for e in msg.entities or []] == [
        ("bold", 3, 4),
        ("text_link", 9, 1),
    ]
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "foo" at byte offset 2'):
        await bot.send_message(chat, "a <foo> b", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Unsupported start tag"):
        await bot.send_message(chat, "if a < b", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Can't find end tag corresponding to start tag"):
        await bot.send_message(chat, "<b>open", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Unmatched end tag"):
        await bot.send_message(chat, "<b>x</i>", parse_mode="HTML")


async def test_markdown_v2(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved and must be escaped"):
        await bot.send_message(chat, "Done.", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Can't find end of Bold entity at byte offset 0"):
        await bot.send_message(chat, "*never closed", parse_mode="MarkdownV2")
    msg = await bot.send_message(
        chat, "*b* _i_ ||s|| `c.d` Done\\.\n```py\nx = 1\n```", parse_mode="MarkdownV2"
    )
    assert msg.text == "b i s c.d Done.\nx = 1"
    assert [(e.type, e.offset, e.length, e.language) for e in msg.entities or []] == [
        ("bold", 0, 1, None),
        ("italic", 2, 1, None),
        ("spoiler", 4, 1, None),
        ("code", 6, 3, None),
        ("pre", 16, 5, "py"),  # trailing newline trimmed, like Telegram
    ]


async def test_legacy_markdown(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    msg = await bot.send_message(chat, "*bold* and a.b!", parse_mode="Markdown")
    assert msg.text == "bold and a.b!"
    with pytest.raises(TelegramBadRequest, match="Can't find end of the entity starting at byte"):
        await bot.send_message(chat, "snake_case", parse_mode="Markdown")
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(chat, "x", parse_mode="RST")


async def test_explicit_entities_validated_in_utf16(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    ok = await bot.send_message(
        chat, "😀 hi", entities=[MessageEntity(type="bold", offset=0, length=5)]
    )
    assert ok.entities is not None and ok.entities[0].length == 5
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):  # 4 chars, 5 units
        await bot.send_message(
            chat, "😀 hi", entities=[MessageEntity(type="bold", offset=1, length=5)]
        )
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(
            chat, "hi", entities=[MessageEntity(type="sparkle", offset=0, length=1)]
        )
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(
            chat, "hi", entities=[MessageEntity(type="text_link", offset=0, length=2)]
        )
    # entities win over parse_mode: the HTML is not parsed
    raw = await bot.send_message(
        chat,
        "<b>x</b>",
        parse_mode="HTML",
        entities=[MessageEntity(type="italic", offset=0, length=3)],
    )
    assert raw.text == "<b>x</b>"
    assert [e.type for e in raw.entities or []] == ["italic"]


# --- keyboards and callbacks -------------------------------------------------------------
async def test_callback_data_limit_is_64_bytes(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    await bot.send_message(chat, "ok", reply_markup=keyboard("é" * 32))  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(chat, "no", reply_markup=keyboard("é" * 33))  # 33 chars, 66 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(chat, "no", reply_markup=keyboard("x" * 65))
    text_only = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="t")]])
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed"):
        await bot.send_message(chat, "no", reply_markup=text_only)
    two_actions = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="t", callback_data="a", url="https://x.org")]]
    )
    with pytest.raises(TelegramBadRequest, match="exactly one"):
        await bot.send_message(chat, "no", reply_markup=two_actions)
    assert len(fake.bot_messages(chat)) == 1


async def test_callback_query_answered_once(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    sent = await bot.send_message(chat, "rate", reply_markup=keyboard("up", "down"))
    with pytest.raises(ValueError, match="no button"):
        fake.user_presses(chat, sent.message_id, "sideways")
    query_id = fake.user_presses(chat, sent.message_id, "up")
    updates = await bot.get_updates(offset=-1)
    query = updates[-1].callback_query
    assert query is not None and query.id == query_id and query.data == "up"
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id
    assert query.message.reply_markup is not None
    assert [
        [b.callback_data for b in row] for row in query.message.reply_markup.inline_keyboard
    ] == [["up", "down"]]
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query_id, text="x" * 201)
    assert await bot.answer_callback_query(query_id, text="Thanks!")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id, text="again")
    assert fake.callback_answers()[query_id]["text"] == "Thanks!"


# --- failures and flood control ----------------------------------------------------------
async def test_fail_next_retry_after(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 7",
        retry_after=7, times=2,
    )  # fmt: skip
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(chat, "x")
        assert caught.value.retry_after == 7
        # Retrying before retry_after has passed is refused with the seconds left, as by
        # Telegram, and does not use up an injected failure.
        fake.advance(5)
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(chat, "too early")
        assert caught.value.retry_after == 2
        assert caught.value.message.endswith("Too Many Requests: retry after 2")
        fake.advance(2)
    await bot.send_message(chat, "finally")
    assert [r.ok for r in fake.requests if r.method == "sendMessage"] == [
        False, False, False, False, True]
    assert [p["text"] for p in fake.calls("sendmessage")] == ["finally"]
    fake.user_sends("hi", chat_id=USER + 1)
    await bot.send_message(USER + 1, "another chat is not held up")


async def test_a_deleted_message_cannot_be_edited_and_a_dropped_call_is_a_network_error(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    sent = await bot.send_message(chat, "soon gone")
    fake.user_deletes(chat, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("edited", chat_id=chat, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_reply_markup(chat_id=chat, message_id=sent.message_id,
                                            reply_markup=keyboard("x"))
    fake.drop_next("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(chat, "lost on the way")
    again = await bot.send_message(chat, "this one arrives")
    assert [m.text for m in fake.bot_messages(chat)] == ["this one arrives"]
    assert again.message_id > sent.message_id
    assert [r.error for r in fake.requests if r.method == "sendMessage"][-2:] == [
        "connection dropped", None]


async def test_group_flood_limit() -> None:
    fake = FakeTelegram(group_edit_limit_per_minute=3)
    await fake.start()
    bot = make_bot(fake)
    try:
        fake.user_sends("/ask", chat_id=GROUP, user_id=USER, chat_type="supergroup")
        first = await bot.send_message(GROUP, "1")
        await bot.edit_message_text("1!", chat_id=GROUP, message_id=first.message_id)
        await bot.send_message(GROUP, "2")
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.edit_message_text("1!!", chat_id=GROUP, message_id=first.message_id)
        assert 1 <= caught.value.retry_after <= 60
        assert "Too Many Requests: retry after" in caught.value.message
        fake.user_sends("hi", chat_id=USER)
        await bot.send_message(USER, "private chats are not limited")
    finally:
        await bot.session.close()
        await fake.stop()


@pytest.fixture
async def flood() -> AsyncIterator[FakeTelegram]:
    """A fake with Telegram-like flood control and a stopped clock (only `advance` moves it)."""
    server = FakeTelegram(flood=True, clock=lambda: 1000.0)
    await server.start()
    yield server
    await server.stop()
    assert not server.internal_errors


async def retry_after(call: Awaitable[Any]) -> int:
    """The `retry_after` of the 429 that `call` meets."""
    with pytest.raises(TelegramRetryAfter) as caught:
        await call
    assert caught.value.message.endswith(f"Too Many Requests: retry after "
                                         f"{caught.value.retry_after}")
    return caught.value.retry_after


async def test_private_flood_buckets_for_messages_and_drafts(flood: FakeTelegram) -> None:
    bot = make_bot(flood)
    try:
        flood.user_sends("hi", chat_id=USER)
        # Messages and edits share a bucket: a burst of 3, then one a second.
        first = await bot.send_message(USER, "1")
        await bot.edit_message_text("1!", chat_id=USER, message_id=first.message_id)
        await bot.send_message(USER, "2")
        assert await retry_after(bot.send_message(USER, "3")) == 1
        assert await retry_after(
            bot.edit_message_text("1!!", chat_id=USER, message_id=first.message_id)) == 1
        # Drafts have a bucket of their own: 4 at once, then 4 a second.
        for n in range(4):
            assert await bot.send_message_draft(chat_id=USER, draft_id=9, text=f"d{n}")
        assert await retry_after(bot.send_message_draft(chat_id=USER, draft_id=9, text="x")) == 1
        flood.advance(0.25)
        assert await bot.send_message_draft(chat_id=USER, draft_id=9, text="d4")
        # Refused calls used up nothing: a second after the burst one message passes.
        flood.advance(0.75)
        await bot.send_message(USER, "3")
        assert await retry_after(bot.send_message(USER, "4")) == 1
        flood.advance(5)  # the bucket holds 3 at most, however long the chat was quiet
        for n in range(3):
            await bot.send_message(USER, f"burst {n}")
        assert await retry_after(bot.send_message(USER, "over")) == 1
        flood.user_sends("hi", chat_id=USER + 1)
        await bot.send_message(USER + 1, "another chat has its own budget")
        assert [p["text"] for p in flood.calls("sendMessage")][-1].startswith("another")
        assert len(flood.drafts(USER)) == 5
        refused = [r.method for r in flood.requests if r.error_code == 429]
        assert refused == ["sendMessage", "editMessageText", "sendMessageDraft", "sendMessage",
                           "sendMessage"]
    finally:
        await bot.session.close()


async def test_flood_keeps_twenty_a_minute_in_groups(flood: FakeTelegram) -> None:
    bot = make_bot(flood)
    try:
        flood.user_sends("/ask", chat_id=GROUP, user_id=USER, chat_type="supergroup")
        for n in range(20):
            await bot.send_message(GROUP, str(n))
            flood.advance(1)
        assert flood.group_edit_limit_per_minute == 20
        assert await retry_after(bot.send_message(GROUP, "21st")) == 40
        flood.advance(40)
        await bot.send_message(GROUP, "the first one left the window")
        flood.group_edit_limit_per_minute = None  # a test may change the budget
        for n in range(5):
            await bot.send_message(GROUP, f"unlimited {n}")
    finally:
        await bot.session.close()


async def test_global_cap_over_all_chats() -> None:
    fake = FakeTelegram(global_per_second=2, clock=lambda: 1000.0)
    await fake.start()
    bot = make_bot(fake)
    try:
        for chat in (USER, USER + 1, USER + 2):
            fake.user_sends("hi", chat_id=chat)
        await bot.send_message(USER, "a")
        await bot.send_message(USER + 1, "b")
        assert await retry_after(bot.send_message(USER + 2, "c")) == 1
        assert await bot.send_message_draft(chat_id=USER + 2, draft_id=1, text="drafts pass")
        fake.advance(0.5)
        await bot.send_message(USER + 2, "c")
        for n in range(10):  # no per-chat limit without flood=True
            fake.advance(0.5)
            await bot.send_message(USER, str(n))
    finally:
        await bot.session.close()
        await fake.stop()


async def test_observers_see_successful_calls(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    seen: list[tuple[str, dict[str, Any], Any, float]] = []
    fake.observers.append(lambda *call: seen.append(call))
    before = time.monotonic()
    sent = await bot.send_message(chat, "hello", reply_markup=keyboard("a"))
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(chat, "")
    await bot.send_message_draft(chat_id=chat, draft_id=3, text="draft")
    assert [(name, params.get("text")) for name, params, _, _ in seen] == [
        ("sendMessage", "hello"), ("sendMessageDraft", "draft")]
    _, _, result, at = seen[0]
    assert result["message_id"] == sent.message_id and result["reply_markup"]
    assert before <= at <= time.monotonic()

    def broken(*call: object) -> None:
        raise RuntimeError("observer bug")

    fake.observers.append(broken)
    await bot.send_message(chat, "still delivered")
    assert [type(e) for e in fake.internal_errors] == [RuntimeError]
    fake.internal_errors.clear()


# --- drafts ------------------------------------------------------------------------------
async def test_send_message_draft(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.user_sends("hi all", chat_id=GROUP, user_id=USER, chat_type="group")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_message_draft(chat_id=GROUP, draft_id=7, text="x")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_ID_INVALID"):
        await bot.send_message_draft(chat_id=chat, draft_id=0, text="x")
    assert await bot.send_message_draft(chat_id=chat, draft_id=7, text="", can_stop=True)
    assert await bot.send_message_draft(
        chat_id=chat, draft_id=7, text="<b>Hel</b>", parse_mode="HTML", can_stop=True
    )
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message_draft(chat_id=chat, draft_id=7, text="a" * 4097)
    frames = fake.drafts(chat)
    assert [(f.draft_id, f.text, f.can_stop) for f in frames] == [(7, "", True), (7, "Hel", True)]
    assert frames[1].entities == [{"type": "bold", "offset": 0, "length": 3}]
    assert fake.bot_messages(chat) == []  # drafts are not messages

    fake.user_stops_generation(chat, 7)
    updates = await bot.get_updates(offset=-1)
    stopped = updates[-1].stopped_message_generation
    assert stopped is not None and (stopped.chat.id, stopped.draft_id) == (chat, 7)
    with pytest.raises(ValueError, match="no draft"):
        fake.user_stops_generation(chat, 8)


# --- getUpdates / polling ----------------------------------------------------------------
async def test_get_updates_offset_limit_and_allowed_updates(fake: FakeTelegram, bot: Bot) -> None:
    ids = [fake.user_sends(f"m{i}", chat_id=USER)["update_id"] for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    got = await bot.get_updates(limit=2)
    assert [u.message.text for u in got if u.message] == ["m0", "m1"]
    got = await bot.get_updates(offset=ids[1])  # confirms m0
    assert [u.update_id for u in got] == ids[1:]
    assert [u["update_id"] for u in fake.pending_updates()] == ids[1:]
    got = await bot.get_updates(offset=ids[2] + 1, allowed_updates=["callback_query"])
    assert got == [] and fake.pending_updates() == []
    fake.user_sends("filtered", chat_id=USER)
    assert await bot.get_updates() == []  # allowed_updates is remembered
    assert len(await bot.get_updates(allowed_updates=["message"])) == 1


async def test_long_poll_waits_then_times_out(fake: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    assert fake.calls("getUpdates") == [{"timeout": 5}]  # an accepted, waiting poll counts
    fake.user_sends("wake up", chat_id=USER)
    [update] = await poll
    assert update.message is not None and update.message.text == "wake up"
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    assert await bot.get_updates(offset=update.update_id + 1, timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_second_get_updates_terminates_first(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for(lambda: fake.requests)
    second = asyncio.create_task(bot.get_updates(timeout=5))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    fake.user_sends("for the survivor", chat_id=USER)
    [update] = await second
    assert update.message is not None and update.message.text == "for the survivor"


async def test_cancelled_long_poll_is_released(fake: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=8))
    record = await fake.wait_for(lambda: fake.requests and fake.requests[-1])
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
    await fake.wait_for(lambda: record.ok, timeout=2)  # server noticed the hang-up quickly
    fake.user_sends("after cancel", chat_id=USER)
    [update] = await bot.get_updates(timeout=2)
    assert update.message is not None and update.message.text == "after cancel"


async def test_stop_ends_waiting_long_polls() -> None:
    fake = FakeTelegram()
    await fake.start()
    b = make_bot(fake)
    poll = asyncio.create_task(b.get_updates(timeout=8))
    await fake.wait_for(lambda: fake.requests)
    started = time.monotonic()
    await fake.stop()
    assert await poll == []
    assert time.monotonic() - started < 1
    await b.session.close()


async def test_dispatcher_polling_replies(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        await message.answer(f"Hello, {message.from_user.first_name}!")

    update = fake.user_sends("/start", chat_id=USER)
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    try:
        await fake.wait_for_bot_messages(USER, 1, timeout=5)
        fake.user_sends("/start", chat_id=USER, first_name="Bob")  # arrives mid long poll
        replies = await fake.wait_for_bot_messages(USER, 2, timeout=3)
        await fake.wait_for(lambda: not fake.pending_updates(), timeout=3)
    finally:
        await dp.stop_polling()
        await polling
    assert [m.text for m in replies] == ["Hello, Ann!", "Hello, Bob!"]
    assert [m.from_bot for m in fake.chat_messages(USER)] == [False, True, False, True]
    assert fake.calls("getUpdates")[0]["allowed_updates"] == ["message"]


# --- documents, actions, commands --------------------------------------------------------
async def test_send_document_stores_bytes(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    payload = b"# Answer\n\nprint('hi')\n"
    msg = await bot.send_document(
        chat, BufferedInputFile(payload, filename="answer.md"), caption="<i>full</i>",
        parse_mode="HTML",
    )  # fmt: skip
    assert msg.document is not None and msg.document.file_name == "answer.md"
    assert msg.caption == "full" and msg.document.file_size == len(payload)
    [shown] = fake.bot_messages(chat)
    assert shown.document is not None and shown.document["content"] == payload
    assert shown.document["mime_type"] == "text/markdown"
    assert shown.caption_entities == [{"type": "italic", "offset": 0, "length": 4}]
    again = await bot.send_document(chat, msg.document.file_id)  # resend by file_id
    assert again.document is not None and again.document.file_id == msg.document.file_id
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_document(chat, BufferedInputFile(b"x", "x.txt"), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=chat, message_id=msg.message_id)


async def test_upload_over_limit_is_413(
    fake: FakeTelegram, bot: Bot, chat: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_params, "MAX_UPLOAD", 10)  # stands in for 50 MB
    await bot.send_document(chat, BufferedInputFile(b"x" * 10, "ok.bin"))
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(chat, BufferedInputFile(b"x" * 11, "big.bin"))
    assert fake.requests[-1].error_code == 413


async def test_send_chat_action(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    assert await bot.send_chat_action(chat, "typing")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action in request"):
        await bot.send_chat_action(chat, "thinking")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_chat_action(4242, "typing")
    assert fake.chat_actions(chat) == ["typing"]


async def test_my_commands(fake: FakeTelegram, bot: Bot) -> None:
    cmds = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="new", description="New chat"),
    ]
    assert await bot.set_my_commands(cmds)
    assert await bot.set_my_commands(
        cmds[:1], scope=BotCommandScopeChat(chat_id=5), language_code="de"
    )
    stored = fake.commands()
    assert [c["command"] for c in stored["default"]] == ["start", "new"]
    assert stored['{"chat_id": 5, "type": "chat"}:de'] == [
        {"command": "start", "description": "Start"}
    ]
    assert [c.command for c in await bot.get_my_commands()] == ["start", "new"]
    for bad, reason in [
        (BotCommand(command="Start", description="x"), "BOT_COMMAND_INVALID"),
        (BotCommand(command="a" * 33, description="x"), "BOT_COMMAND_INVALID"),
        (BotCommand(command="ok", description=" "), "command description is empty"),
        (BotCommand(command="ok", description="d" * 257), "command description is too long"),
    ]:
        with pytest.raises(TelegramBadRequest, match=reason):
            await bot.set_my_commands([bad])
    assert await bot.delete_my_commands()
    assert "default" not in fake.commands()


# --- simulated users and helpers ---------------------------------------------------------
def test_user_sends_adds_entities_in_utf16(fake: FakeTelegram) -> None:
    update = fake.user_sends(
        "😀 /ask@chatmux_test_bot hi @someone", chat_id=GROUP, user_id=USER, chat_type="group"
    )
    message: dict[str, Any] = update["message"]
    assert message["chat"] == {"id": GROUP, "type": "group", "title": "Test group"}
    assert message["entities"] == [
        {"type": "bot_command", "offset": 3, "length": 21},
        {"type": "mention", "offset": 28, "length": 8},
    ]
    sticker = fake.user_sends(chat_id=USER, sticker=True)["message"]
    assert "sticker" in sticker and "text" not in sticker
    assert sticker["message_id"] == 1  # message ids are per chat
    with pytest.raises(ValueError):
        fake.user_sends("x", chat_id=GROUP, chat_type="group")  # no user_id


async def test_wait_for_reports_recent_requests(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(chat, "bad <tag>", parse_mode="HTML")
    with pytest.raises(AssertionError, match=r"sendMessage .*Unsupported start tag"):
        await fake.wait_for(lambda: fake.bot_messages(chat), timeout=0.1)


# --- topics and messages on behalf of chats -----------------------------------------------
FORUM = -1001000000001


async def test_forum_topics_like_telegram(fake: FakeTelegram, bot: Bot) -> None:
    topic = fake.create_topic(FORUM, "Ideas", user_id=USER)
    opened = fake.pending_updates()[-1]["message"]
    assert opened["forum_topic_created"]["name"] == "Ideas"
    assert opened["chat"]["is_forum"] is True
    assert (opened["message_thread_id"], opened["is_topic_message"]) == (topic, True)
    update = fake.user_sends("in the topic", chat_id=FORUM, user_id=USER, chat_type="supergroup",
                             thread_id=topic)
    message = Message.model_validate(update["message"])
    # A message in a topic replies to the topic's first message unless it replies to another.
    assert message.is_topic_message and message.message_thread_id == topic
    assert message.reply_to_message.forum_topic_created is not None

    sent = await bot.send_message(FORUM, "answer", message_thread_id=topic)
    assert (sent.message_thread_id, sent.is_topic_message) == (topic, True)
    replied = await bot.send_message(FORUM, "reply", reply_to_message_id=message.message_id)
    assert replied.message_thread_id == topic  # a reply goes to the replied message's topic
    assert fake.topic_messages(FORUM, topic) == fake.bot_messages(FORUM)
    general = await bot.send_message(FORUM, "to General")
    assert general.message_thread_id is None and fake.topic_messages(FORUM, None)[0].text == (
        "to General")
    await bot.send_chat_action(FORUM, "typing", message_thread_id=topic)
    for wrong in (1, 999, message.message_id):  # General, unknown, not a topic's first message
        with pytest.raises(TelegramBadRequest, match="message thread not found"):
            await bot.send_message(FORUM, "x", message_thread_id=wrong)
        with pytest.raises(TelegramBadRequest, match="message thread not found"):
            await bot.send_chat_action(FORUM, "typing", message_thread_id=wrong)

    # A reply in General carries its reply thread's id, which is not a topic.
    in_general = fake.user_sends("reply in General", chat_id=FORUM, user_id=USER,
                                 chat_type="supergroup", reply_to_message_id=general.message_id)
    reply = Message.model_validate(in_general["message"])
    assert reply.message_thread_id == general.message_id and not reply.is_topic_message
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(FORUM, "x", message_thread_id=reply.message_thread_id)
    with pytest.raises(ValueError):
        fake.user_sends("x", chat_id=FORUM, user_id=USER, chat_type="supergroup", thread_id=777)


async def test_private_chat_topics(fake: FakeTelegram, bot: Bot) -> None:
    topic = fake.create_topic(USER, "Work")
    assert (await bot.get_me()).has_topics_enabled is True
    await bot.send_message_draft(USER, draft_id=5, text="…", message_thread_id=topic)
    assert fake.drafts(USER)[-1].thread_id == topic
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message_draft(USER, draft_id=5, text="…", message_thread_id=topic + 1)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(USER, "x", message_thread_id=topic + 1)


def test_messages_on_behalf_of_a_chat(fake: FakeTelegram) -> None:
    admin = Message.model_validate(
        fake.chat_sends("hi", chat_id=FORUM, author_signature="Boss")["message"])
    assert admin.from_user.username == "GroupAnonymousBot" and admin.from_user.is_bot
    assert admin.sender_chat.id == FORUM and admin.author_signature == "Boss"
    channel = Message.model_validate(
        fake.chat_sends("news", chat_id=FORUM, channel_id=-1002000000002)["message"])
    assert channel.from_user.username == "Channel_Bot"
    assert (channel.sender_chat.id, channel.sender_chat.type) == (-1002000000002, "channel")
    with pytest.raises(ValueError):
        fake.chat_sends("x", chat_id=GROUP + 1, channel_id=-5)  # not a channel id
    fake.user_sends("x", chat_id=GROUP, user_id=USER, chat_type="group")
    with pytest.raises(ValueError):  # basic groups have no anonymous admins
        fake.chat_sends("x", chat_id=GROUP)


async def test_control_characters_become_spaces_and_surrogates_cannot_be_sent(
    fake: FakeTelegram, bot: Bot, chat: int
) -> None:
    """Telegram's server turns C0 control characters into spaces (so what a bot shows differs
    from what it sent); a lone surrogate cannot even be encoded as UTF-8 by the client."""
    sent = await bot.send_message(chat, "a\x00b\x07c\nd")
    assert sent.text == "a b c\nd"
    with pytest.raises(UnicodeEncodeError):
        await bot.send_message(chat, "half \ud800")


async def test_message_reactions_like_telegram(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    from aiogram.types import ReactionTypeCustomEmoji, ReactionTypeEmoji

    asked = fake.chat_messages(chat)[0].message_id
    assert await bot.set_message_reaction(chat, asked, reaction=[ReactionTypeEmoji(emoji="👀")])
    assert fake.reactions(chat, asked) == ["👀"]
    assert await bot.set_message_reaction(chat, asked, reaction=[ReactionTypeEmoji(emoji="✍")])
    assert fake.reactions(chat, asked) == ["✍"]  # replaced, not added
    for reaction, error in (
        ([ReactionTypeEmoji(emoji="⏳")], "REACTION_INVALID"),  # not an allowed reaction
        ([ReactionTypeCustomEmoji(custom_emoji_id="5368324170671202286")], "REACTION_INVALID"),
        ([ReactionTypeEmoji(emoji="👍"), ReactionTypeEmoji(emoji="👀")], "REACTIONS_TOO_MANY"),
    ):
        with pytest.raises(TelegramBadRequest, match=error):
            await bot.set_message_reaction(chat, asked, reaction=reaction)
    with pytest.raises(TelegramBadRequest, match="message to react not found"):
        await bot.set_message_reaction(chat, 999, reaction=[ReactionTypeEmoji(emoji="👀")])
    assert await bot.set_message_reaction(chat, asked, reaction=[])
    assert fake.reactions(chat, asked) == []
    fake.user_sends("hi", chat_id=GROUP, user_id=5, chat_type="group")
    fake.world.chats[GROUP].reactions = frozenset({"👍"})  # a group that allows only 👍
    with pytest.raises(TelegramBadRequest, match="REACTION_INVALID"):
        await bot.set_message_reaction(GROUP, 1, reaction=[ReactionTypeEmoji(emoji="👀")])


def test_user_edits_a_message_like_telegram(fake: FakeTelegram) -> None:
    sent = fake.user_sends("helo @someone", chat_id=USER)["message"]
    update = fake.user_edits(USER, sent["message_id"], "hello /start")
    edited = update["edited_message"]
    assert set(update) == {"update_id", "edited_message"}
    assert edited["message_id"] == sent["message_id"] and edited["date"] == sent["date"]
    assert edited["edit_date"] >= edited["date"]
    assert edited["text"] == "hello /start"
    assert edited["entities"] == [{"type": "bot_command", "offset": 6, "length": 6}]
    assert fake.chat_messages(USER)[0].text == "hello /start"
    with pytest.raises(ValueError, match="unchanged"):
        fake.user_edits(USER, sent["message_id"], "hello /start")
    with pytest.raises(ValueError, match="no user message"):
        fake.user_edits(USER, 99, "x")
    fake.user_sends(chat_id=USER, sticker=True)
    with pytest.raises(ValueError, match="only text"):
        fake.user_edits(USER, sent["message_id"] + 1, "x")


async def test_get_chat_member_statuses_parse_in_aiogram(fake: FakeTelegram, bot: Bot) -> None:
    fake.set_member_status(GROUP, 7, "creator")
    fake.set_member_status(GROUP, 8, "administrator", is_anonymous=True)
    fake.user_sends("hello", chat_id=GROUP, user_id=9, chat_type="supergroup")
    fake.user_sends("hi", chat_id=USER)
    owner, admin, member = [await bot.get_chat_member(GROUP, uid) for uid in (7, 8, 9)]
    assert (owner.status, admin.status, member.status) == ("creator", "administrator", "member")
    assert admin.is_anonymous is True and member.user.id == 9
    assert (await bot.get_chat_member(GROUP, USER)).status == "left"  # seen, not in the group
    assert (await bot.get_chat_member(USER, USER)).status == "member"
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.get_chat_member(GROUP, 424242)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat_member(-100999, 9)
    with pytest.raises(ValueError, match="status must be"):
        fake.set_member_status(GROUP, 9, "kicked")
