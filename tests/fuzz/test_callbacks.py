"""Forged button presses: random data, real data bent, pressed by people it is not for."""

from __future__ import annotations

import pytest
from aiogram.filters.callback_data import CallbackData
from hypothesis import given
from hypothesis import strategies as st

from bot.handlers.language import LangChoice
from bot.keyboards.answers import AnswerAction, RegenWith
from bot.keyboards.arena import BattleStrength, BattleVote
from bot.keyboards.media import VisionSwitch
from bot.keyboards.models import ModelChoice
from bot.keyboards.personas import PersonaChoice
from bot.keyboards.privacy import PrivacyAction
from bot.keyboards.questions import AskEdited
from bot.keyboards.settings import GenSetting
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.harness import GROUP
from tests.fuzz.scene import DUELLIST, OWNER, STRANGER, Scene, build_scene
from tests.fuzz.strategies import forged_callback_data, mutated_callback_data

pytestmark = pytest.mark.fuzz


@pytest.fixture
async def scene(fuzz) -> Scene:
    return await build_scene(fuzz)


# Every kind of button the bot makes.
BUTTONS: tuple[type[CallbackData], ...] = (AnswerAction, RegenWith, AskEdited, BattleVote,
                                           BattleStrength, GenSetting, ModelChoice,
                                           PersonaChoice, VisionSwitch, LangChoice,
                                           PrivacyAction)


def _canonical(payload: str) -> str:
    """The data as the bot would pack what it parses from it: "bv: 1:a" and "bv:+1:a" are
    the button "bv:1:a" (pydantic reads " 1" as 1), so pressing them is pressing it."""
    for kind in BUTTONS:
        try:
            return kind.unpack(payload).pack()
        except (TypeError, ValueError):
            continue
    return payload


def _writes_by_right(data: str, presser: int) -> bool:
    """Choices one may make by hand: a value for one's own settings (range-checked, like the
    menu's steps), one's own consent or "forget me" (/privacy), and a switch to a vision
    model (one's own model, as with /model; the photo question it names is answered only if
    it is really the presser's)."""
    parts = data.split(":")
    return ((parts[0] in ("gen", "priv") and len(parts) > 1 and parts[1] == str(presser))
            or (parts[0] == "vis" and len(parts) > 1 and parts[1] == "beta"))


async def _press(fuzz, scene: Scene, data: st.DataObject, chat_id: int, payload: str,
                 presser: int) -> str:
    """Press `payload` on one of the chat's bot messages (or a stand-in for a message the bot
    cannot see, or one that is not there); returns the callback query id."""
    message_id = data.draw(st.sampled_from(scene.bot_messages[chat_id]), label="on")
    update = fuzz.press_update(chat_id, message_id, payload, user_id=None if chat_id > 0
                               else presser)
    if chat_id > 0 and presser != chat_id:  # a client that lies about who pressed
        query = update["callback_query"]
        query["from"] = {**query["from"], "id": presser}
    message = update["callback_query"]["message"]
    kind = data.draw(st.sampled_from(["real", "inaccessible", "missing", "inline"]),
                     label="message")
    if kind == "inline":  # a button under a message sent in inline mode: no message at all
        del update["callback_query"]["message"]
        update["callback_query"]["inline_message_id"] = "AgAAAN3wAQBGIDkFfuzz"
    elif kind == "inaccessible":  # Telegram's stand-in for a message the bot can no longer see
        update["callback_query"]["message"] = {"chat": message["chat"],
                                               "message_id": message["message_id"], "date": 0}
    elif kind == "missing":  # a message that is not (or no longer) in the chat
        message["message_id"] = 10**6 + message["message_id"]
    await fuzz.feed(update)
    return update["callback_query"]["id"]


@fuzz_settings(800)
@given(data=st.data())
async def test_forged_callback_data_writes_nothing(fuzz, scene, data):
    """Data the bot never offered — random, or a real button's with an id changed (to
    someone else's, negative, huge, not a number), a prefix swapped, a field added, dropped
    or cut — pressed by the owner on any of their bot messages: a toast, no write."""
    chats = [OWNER, STRANGER, DUELLIST, GROUP]
    if data.draw(st.integers(0, 2), label="random data") == 0:
        chat_id = data.draw(st.sampled_from(chats), label="chat")
        payload = data.draw(forged_callback_data(), label="callback_data")
    else:  # a kind of button first (each as likely), then a chat that shows it
        kinds = sorted({d.split(":")[0] for d in scene.offered()})
        kind = data.draw(st.sampled_from(kinds), label="kind")
        chat_id = data.draw(st.sampled_from(
            [c for c in chats if any(d.startswith(f"{kind}:") for d in scene.data_in(c))]),
            label="chat")
        foreign = [i for c in chats if c != chat_id for i in scene.ids_of(c)] + ["1", "2"]
        real = [d for d in scene.data_in(chat_id) if d.startswith(f"{kind}:")]
        payload = data.draw(mutated_callback_data(real, foreign), label="callback_data")
    presser = chat_id if chat_id > 0 else data.draw(st.sampled_from([OWNER, STRANGER]))
    offered = scene.offered()
    canonical = _canonical(payload)
    writes_allowed = canonical in offered or _writes_by_right(canonical, presser)
    since = fuzz.begin()
    before = await fuzz.checksums()
    query_id = await _press(fuzz, scene, data, chat_id, payload, presser)
    await fuzz.idle()
    if not writes_allowed:
        await fuzz.assert_unchanged(before)
    fuzz.assert_clean(since)
    assert query_id in fuzz.telegram.callback_answers()  # the spinner always stops


@fuzz_settings(300)
@given(data=st.data())
async def test_buttons_pressed_by_someone_else_write_nothing(fuzz, scene, data):
    """A private chat's buttons pressed by another person (a forged `from`), and a group's
    model and settings menus pressed by a plain member or not the settings' owner: refused,
    nothing written."""
    where = data.draw(st.sampled_from([OWNER, STRANGER, DUELLIST, GROUP]), label="chat")
    if where == GROUP:
        menus = [d for d in scene.data_in(GROUP)
                 if d.startswith(("model:", "persona:")) or d.startswith("gen:")]
        payload = data.draw(st.sampled_from(menus), label="callback_data")
        # STRANGER opened the group's menus and is a plain member; OWNER has never written
        # there either: neither may configure the group, OWNER may not change STRANGER's
        # settings.
        presser = OWNER if payload.startswith("gen:") else data.draw(
            st.sampled_from([OWNER, STRANGER]), label="presser")
    else:
        payload = data.draw(st.sampled_from(scene.data_in(where)), label="callback_data")
        presser = data.draw(st.sampled_from([u for u in (OWNER, STRANGER, DUELLIST)
                                             if u != where]), label="presser")
    since = fuzz.begin()
    before = await fuzz.checksums()
    query_id = await _press(fuzz, scene, data, where, payload, presser)
    await fuzz.idle()
    await fuzz.assert_unchanged(before)
    fuzz.assert_clean(since)
    assert query_id in fuzz.telegram.callback_answers()
