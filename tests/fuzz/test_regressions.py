"""What the fuzz tests found, pinned as explicit examples (run every time, nothing random)."""

from __future__ import annotations

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.harness import ADMIN, USERS, FuzzBot
from tests.fuzz.scene import png

pytestmark = pytest.mark.fuzz
# The explicit examples alone, sharing the test's bot (the fuzz profile allows that).
explicit_only = settings(fuzz_settings(), phases=[Phase.explicit])


@explicit_only
@given(chat_type=st.none(), text=st.none(), on_behalf=st.none())
@example(chat_type="private", text="hello", on_behalf=False)
@example(chat_type="supergroup", text="hello", on_behalf=False)
@example(chat_type="supergroup", text="/cancel", on_behalf=True)
async def test_a_message_without_a_sender_is_handled(fuzz: FuzzBot, chat_type: str, text: str,
                                                     on_behalf: bool) -> None:
    """`from` is optional in the Bot API. Such a message has no FSM context: the ✏️ edit-mode
    filter failed with a TypeError for it (now it is simply not an edit), and so did /cancel
    on behalf of a chat (now there is nothing to cancel)."""
    chat_id = ADMIN if chat_type == "private" else -1001234567890
    update = fuzz.telegram.user_sends(text, chat_id=chat_id, chat_type=chat_type,
                                      user_id=None if chat_type == "private" else USERS[0])
    fuzz.telegram.world.updates.remove(update)
    del update["message"]["from"]
    if on_behalf:
        update["message"]["sender_chat"] = update["message"]["chat"]
    since = fuzz.begin()
    await fuzz.feed(update)
    fuzz.assert_clean(since)


async def _menu_button(fuzz: FuzzBot, command: str, prefix: str) -> tuple[int, str]:
    await fuzz.send(command, chat_id=ADMIN)
    menu = fuzz.telegram.bot_messages(ADMIN)[-1]
    data = next(b["callback_data"] for row in menu.reply_markup["inline_keyboard"]
                for b in row if b["callback_data"].startswith(prefix))
    return menu.message_id, data


@explicit_only
@given(command=st.none(), prefix=st.none())
@example(command="/lang", prefix="lang:ru")
@example(command="/model", prefix="model:beta")
@example(command="/settings", prefix="gen:")
async def test_a_menu_pressed_under_an_inaccessible_message(fuzz: FuzzBot, command: str,
                                                            prefix: str) -> None:
    """Telegram sends an `InaccessibleMessage` (date 0) for a message the bot can no longer
    see: the choice is made, the menu is not redrawn (it failed with an AttributeError)."""
    message_id, data = await _menu_button(fuzz, command, prefix)
    update = fuzz.press_update(ADMIN, message_id, data)
    message = update["callback_query"]["message"]
    update["callback_query"]["message"] = {"chat": message["chat"], "message_id": message_id,
                                           "date": 0}
    since = fuzz.begin()
    await fuzz.feed(update)
    fuzz.assert_clean(since)
    assert fuzz.telegram.callback_answers()[update["callback_query"]["id"]]


@explicit_only
@given(command=st.none(), prefix=st.none())
@example(command="/lang", prefix="lang:ru")
@example(command="/model", prefix="model:beta")
async def test_a_press_in_someone_elses_private_chat_changes_nothing(
        fuzz: FuzzBot, command: str, prefix: str) -> None:
    """Only the person of a private chat sees its buttons: a press with another `from` (a
    modified client) is refused; it changed the presser's language or model before."""
    await fuzz.send("/start", chat_id=USERS[0])
    message_id, data = await _menu_button(fuzz, command, prefix)
    await fuzz.settle()
    update = fuzz.press_update(ADMIN, message_id, data)
    query = update["callback_query"]
    query["from"] = {**query["from"], "id": USERS[0]}
    async with fuzz.writing_nothing():
        await fuzz.feed(update)
    assert fuzz.telegram.callback_answers()[query["id"]]["text"] == (
        "Only the person in this chat can do that.")


@explicit_only
@given(prefix=st.none())
@example(prefix="ans:up:")
@example(prefix="ans:regen:")
async def test_a_press_without_a_message_is_refused(fuzz: FuzzBot, prefix: str) -> None:
    """A callback query may come without `message` (a button under an inline-mode message,
    which this bot never sends): handlers needing the presser's row failed with a TypeError."""
    await fuzz.send("hello", chat_id=ADMIN)
    answer = next(m for m in fuzz.telegram.bot_messages(ADMIN) if m.reply_markup)
    data = next(b["callback_data"] for row in answer.reply_markup["inline_keyboard"]
                for b in row if b["callback_data"].startswith(prefix))
    await fuzz.settle()
    update = fuzz.press_update(ADMIN, answer.message_id, data)
    query = update["callback_query"]
    del query["message"]
    query["inline_message_id"] = "AgAAAN3wAQBGIDkF"
    async with fuzz.writing_nothing():
        await fuzz.feed(update)
    assert fuzz.telegram.callback_answers()[query["id"]]["text"] == (
        "This button is no longer valid.")


@explicit_only
@given(text=st.none())
@example(text="/ban 99999999999999999999")
@example(text="/tier -99999999999999999999 standard")
@example(text="/unban ٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩٩")
async def test_an_admin_naming_a_user_by_an_impossible_id(fuzz: FuzzBot, text: str) -> None:
    """A numeric id beyond Postgres' BIGINT (or in non-ASCII digits that Python reads as
    one) made the lookup fail with a DBAPIError: it now names no one, and nothing changes."""
    await fuzz.send("/start", chat_id=ADMIN)
    await fuzz.settle()
    async with fuzz.writing_nothing() as since:
        await fuzz.send(text, chat_id=ADMIN)
    assert fuzz.shown_texts(since)[0].startswith("⚠️")


@explicit_only
@given(question_id=st.none())
@example(question_id="99999999999999999999")
@example(question_id="-5")
async def test_a_vision_switch_naming_an_impossible_question(fuzz: FuzzBot,
                                                             question_id: str) -> None:
    """The "switch to a vision model" button's question id was a bare int: one beyond BIGINT
    failed the lookup with a DBAPIError after the switch. Now such data is no button of ours
    (like every other stored id in callback data) and changes nothing."""
    photo = fuzz.telegram.user_sends_photo(png(), chat_id=ADMIN, caption="what is this?")
    fuzz.telegram.world.updates.remove(photo)
    await fuzz.feed(photo)
    await fuzz.settle()
    offer = next(m for m in fuzz.telegram.bot_messages(ADMIN) if m.reply_markup)
    data = offer.reply_markup["inline_keyboard"][0][0]["callback_data"]
    assert data.startswith("vis:beta:")
    update = fuzz.press_update(ADMIN, offer.message_id, f"vis:beta:{question_id}")
    async with fuzz.writing_nothing():
        await fuzz.feed(update)


@explicit_only
@given(prompt=st.none())
@example(prompt="𒐫" * 3000)  # 3000 characters, 6000 UTF-16 units
@example(prompt="👍🏽" * 1000)
async def test_showing_a_long_prompt_of_wide_characters(fuzz: FuzzBot, prompt: str) -> None:
    """/system showed up to 3000 *characters* of the prompt: wide ones (two UTF-16 units
    each, Telegram's measure) made the message too long to send. It is cut by units now."""
    await fuzz.send(f"/system {prompt}", chat_id=USERS[0])
    since = fuzz.begin()
    await fuzz.send("/system", chat_id=USERS[0])
    fuzz.assert_clean(since)
    shown = fuzz.shown_texts(since)[0]
    assert "…" in shown and len(shown.encode("utf-16-le")) // 2 <= 4096


@explicit_only
@given(text=st.none())
@example(text="\u200b")  # blank: the bot replies with one line
@example(text="/nosuchcommand")
async def test_a_reply_to_a_message_deleted_meanwhile(fuzz: FuzzBot, text: str) -> None:
    """The user's message is gone by the time the bot replies to it (deleted at once):
    Telegram's "message to be replied not found" reached the errors handler. Replies are
    sent without the reply then."""
    update = fuzz.telegram.user_sends(text, chat_id=ADMIN)
    fuzz.telegram.world.updates.remove(update)
    fuzz.telegram.user_deletes(ADMIN, update["message"]["message_id"])
    since = fuzz.begin()
    await fuzz.feed(update)
    await fuzz.idle()
    fuzz.assert_clean(since)
    assert fuzz.shown_texts(since)
