"""A small world to press buttons in: real keyboards the bot sent to several people."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image

from tests.fakes.telegram.models import ChatMessage
from tests.fuzz.harness import ADMIN, GROUP, USERS, FuzzBot

OWNER, STRANGER, DUELLIST = ADMIN, USERS[0], USERS[1]


@dataclass
class Scene:
    # (chat id, telegram message id, callback data) of every button the bot showed
    buttons: list[tuple[int, int, str]] = field(default_factory=list)
    # chat id -> the bot's messages there once the scene was set (fixed: examples draw
    # from it, and hypothesis needs the same choices each time it replays one)
    bot_messages: dict[int, list[int]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Scene({len(self.buttons)} buttons)"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(repr(self))  # type: ignore[attr-defined]

    def offered(self) -> set[str]:
        return {data for _, _, data in self.buttons}

    def data_in(self, chat_id: int) -> list[str]:
        return sorted({data for chat, _, data in self.buttons if chat == chat_id})

    def ids_of(self, chat_id: int) -> list[str]:
        """The numbers in the chat's button data (stored answer, battle, question ids)."""
        return sorted({part for data in self.data_in(chat_id) for part in data.split(":")
                       if part.isdigit()})


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def _keyboard_data(message: ChatMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


def _collect(scene: Scene, fuzz: FuzzBot, chat_id: int) -> None:
    for message in fuzz.telegram.bot_messages(chat_id):
        for data in _keyboard_data(message):
            if (chat_id, message.message_id, data) not in scene.buttons:
                scene.buttons.append((chat_id, message.message_id, data))


async def build_scene(fuzz: FuzzBot) -> Scene:
    """Answers with their buttons (and the 🔀 model list) for two people, a group answer,
    an arena battle, an edited question's offer, a photo's offer of a vision model, and the
    /model, /settings and /lang menus."""
    scene = Scene()
    for user in (OWNER, STRANGER):
        await fuzz.send(f"hello from {user}", chat_id=user)
        for command in ("/model", "/settings", "/lang", "/persona"):
            await fuzz.send(command, chat_id=user)
        _collect(scene, fuzz, user)
        answer = next(m for m in fuzz.telegram.bot_messages(user)
                      if any(d.startswith("ans:switch:") for d in _keyboard_data(m)))
        switch = next(d for d in _keyboard_data(answer) if d.startswith("ans:switch:"))
        await fuzz.feed(fuzz.press_update(user, answer.message_id, switch))
        await fuzz.idle()
        _collect(scene, fuzz, user)  # the 🔀 list: rgw:<answer>:<model>
    question = fuzz.telegram.chat_messages(OWNER)[0]
    edit = fuzz.telegram.user_edits(OWNER, question.message_id, "hello, edited")
    fuzz.telegram.world.updates.remove(edit)
    await fuzz.feed(edit)
    await fuzz.idle()
    _collect(scene, fuzz, OWNER)  # the offer to answer the edited question: aed:<id>
    photo = fuzz.telegram.user_sends_photo(png(), chat_id=OWNER, caption="what is this?")
    fuzz.telegram.world.updates.remove(photo)
    await fuzz.feed(photo)
    await fuzz.idle()
    _collect(scene, fuzz, OWNER)  # alpha reads no images: vis:<vision model>:<question>
    await fuzz.send("/arena", chat_id=DUELLIST)
    await fuzz.send("which sort is best?", chat_id=DUELLIST)
    _collect(scene, fuzz, DUELLIST)  # bv:<battle>:<winner>
    for command in ("@chatmux_test_bot hi all", "/model", "/settings"):
        await fuzz.send(command, chat_id=GROUP, user_id=STRANGER, chat_type="supergroup")
    _collect(scene, fuzz, GROUP)
    await fuzz.settle()
    for chat_id in (OWNER, STRANGER, DUELLIST, GROUP):
        scene.bot_messages[chat_id] = [m.message_id for m in fuzz.telegram.bot_messages(chat_id)]
    return scene
