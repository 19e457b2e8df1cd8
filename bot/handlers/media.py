"""Photos, images sent as files, albums, voice and video notes: turns like typed questions.

- A photo (an album is one question) goes to a vision model as image parts; a text-only
  model's user is offered the vision models with a button each (the question is stored and
  answered right after the switch).
- A voice or video note is transcribed by the catalogue's transcription model; the user sees
  the transcript, which is then answered as if it had been typed.
Files too big, too long or of a type we do not read get one line and are not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, MessageEntity

from bot.addressing import addressed_prompt, is_command, topic_of
from bot.answering import Answerer, Turn
from bot.cleaning import clean_text
from bot.filters import Inline
from bot.formatting import utf16_len
from bot.handlers.arena import arena_on
from bot.keyboards.media import VisionSwitch, vision_keyboard
from bot.limits import Limits, over_quota, over_rate
from bot.media import (
    MediaRefused,
    best_photo,
    check_image_document,
    check_voice,
    download,
    image_attachment,
    images_of,
    voice_attachment,
)
from bot.middlewares.user import STORES_AUTHOR
from bot.prefs import Preferences, answering_model
from bot.queueing import QuestionQueue, enqueue_or_answer
from bot.texts import chosen_lang, t
from inference.catalogue import ModelSpec
from inference.errors import BackendError
from inference.keys import KeyRefused
from inference.registry import ModelRegistry
from inference.transcription import transcribe
from storage.models import User
from storage.repositories.conversations import AlreadyStored, ConversationRepository
from storage.repositories.users import ChatPrefs, TelegramUser, UserRepository

log = logging.getLogger(__name__)

# Telegram sends an album's photos as separate updates with one media_group_id: they are
# gathered until this long passes without another (polling: one process gets them all).
ALBUM_WINDOW = 1.0
# After a switch to a vision model, how long the photo question waits for a turn being
# written to end (it is answered only if the conversation is still at it).
SWITCH_WAIT = 60.0
ALBUM_MAX = 10  # Telegram's limit: an album this full is complete at once
TRANSCRIPT_SHOWN = 3500  # characters of a transcript shown (all of it is answered)
MIC = "🎙 "


class MediaFor(Filter):
    """A photo, image file or voice note meant for the bot (`bot.addressing`): in groups,
    its caption mentions the bot or it replies to the bot. Passes the caption as `prompt`;
    an album's photos all pass (`prompt` None when not addressed): the album decides."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        if is_command(message):
            return False
        prompt = await addressed_prompt(message, bot)
        if prompt is None and message.media_group_id is None:
            return False
        return {"prompt": prompt}


class Albums:
    """Gathers an album's messages: the first to arrive waits for the rest and gets them all,
    the others get None."""

    def __init__(self, window: float = ALBUM_WINDOW) -> None:
        self.window = window
        self._open: dict[tuple[int, str], list[tuple[Message, str | None]]] = {}

    async def gather(self, message: Message, prompt: str | None
                     ) -> list[tuple[Message, str | None]] | None:
        assert message.media_group_id is not None
        key = (message.chat.id, message.media_group_id)
        parts = self._open.get(key)
        if parts is not None:
            parts.append((message, prompt))
            return None
        parts = self._open[key] = [(message, prompt)]
        try:
            seen = 0
            while len(parts) != seen and len(parts) < ALBUM_MAX:
                seen = len(parts)
                await asyncio.sleep(self.window)
        finally:
            del self._open[key]
        return sorted(parts, key=lambda part: part[0].message_id)


async def _say(message: Message, key: str, lang: str, **values: Any) -> None:
    with contextlib.suppress(TelegramAPIError):
        await message.reply(t(key, lang, **values), parse_mode=None)


def _image_of(message: Message) -> dict[str, Any]:
    """The attachment of a photo or image file; `MediaRefused` if we will not read it."""
    if message.photo:
        return image_attachment(best_photo(message.photo))
    assert message.document is not None
    check_image_document(message.document)
    return image_attachment(message.document)


class MediaHandlers:
    def __init__(self) -> None:
        self.albums = Albums()

    async def on_image(self, message: Message, bot: Bot, prompt: str | None,
                       author: TelegramUser, lang: str, answerer: Answerer,
                       conversations: ConversationRepository, registry: ModelRegistry,
                       queue: QuestionQueue, limits: Limits) -> None:
        parts = [(message, prompt)]
        if message.media_group_id is not None:
            gathered = await self.albums.gather(message, prompt)
            if gathered is None:
                return  # another update of the album answers for it
            parts = gathered
        if message.chat.type != ChatType.PRIVATE and all(p is None for _, p in parts):
            return  # an album in a group that does not address the bot
        first = parts[0][0]
        try:
            attachments = [_image_of(m) for m, _ in parts]
        except MediaRefused as exc:
            await _say(first, exc.key, lang)
            return
        caption = "\n\n".join(c for _, p in parts if (c := clean_text(p or "").strip()))
        chat, topic = first.chat, topic_of(first)
        if await queue.full(first, lang) or await over_rate(first, author, lang, limits):
            return  # said so; not stored
        try:
            asked = await conversations.ask(
                author, (chat.id, chat.type, chat.title), topic, caption, first.message_id,
                attachments=attachments,
                more_tg_message_ids=[m.message_id for m, _ in parts[1:]])
        except AlreadyStored:
            return
        user = asked.user
        lang = chosen_lang(user.lang, lang)
        model_id = answering_model(asked.prefs, user, registry)
        spec = registry.spec(model_id)
        arena = arena_on(user, registry)
        battle = arena and registry.arena_pair(answerer.rng, vision=True) is not None
        if not (spec.vision or battle):
            await self._offer_vision(first, spec, asked.question.id, registry, lang)
            return
        verdict = await over_quota(first, asked, model_id, arena, lang, conversations, limits)
        if verdict is None:
            return
        # Read the images now: one that cannot be read gets a line, not a model call.
        try:
            for attachment in attachments:
                await answerer.images.data_url(bot, attachment)
        except MediaRefused as exc:
            log.info("image of message %s refused: %s", first.message_id, exc)
            await conversations.abandon(asked.question)
            await _say(first, exc.key, lang)
            return
        await enqueue_or_answer(bot, queue, first, asked.question, asked.path,
                                chat_row_id=asked.chat_row_id, lang=lang,
                                model_id=model_id, arena=arena, vision=True,
                                prefs=Preferences.of(asked.prefs, user, registry),
                                exclude=verdict.exhausted)

    @staticmethod
    async def _offer_vision(message: Message, spec: ModelSpec, question_id: int,
                            registry: ModelRegistry, lang: str) -> None:
        """The question is stored; its model cannot see it: name the ones that can."""
        vision = registry.vision_models()
        with contextlib.suppress(TelegramAPIError):
            if not vision:
                await message.reply(t("vision_none", lang, model=spec.title), parse_mode=None)
                return
            await message.reply(
                t("vision_switch", lang, model=spec.title,
                  models=", ".join(m.title for m in vision)),
                parse_mode=None, reply_markup=vision_keyboard(vision, question_id, lang))

    async def on_voice(self, message: Message, bot: Bot, author: TelegramUser, lang: str,
                       conversations: ConversationRepository, registry: ModelRegistry,
                       queue: QuestionQueue, limits: Limits) -> None:
        note, kind = ((message.voice, "voice") if message.voice is not None
                      else (message.video_note, "video_note"))
        assert note is not None
        try:
            check_voice(note)
        except MediaRefused as exc:
            await _say(message, exc.key, lang)
            return
        spec = registry.transcriber()
        if spec is None:
            await _say(message, "voice_unavailable", lang)
            return
        attachment = voice_attachment(note, kind)
        chat, topic = message.chat, topic_of(message)
        if await queue.full(message, lang) or await over_rate(message, author, lang, limits):
            return  # said so; not stored
        try:  # stored first: the transcript fills it in
            asked = await conversations.ask(author, (chat.id, chat.type, chat.title), topic,
                                            "", message.message_id, attachments=[attachment])
        except AlreadyStored:
            return
        text = await self._transcribe(message, bot, spec, attachment, registry, lang)
        if not text:
            await conversations.abandon(asked.question)  # stays stored, out of the history
            return
        await conversations.set_content(asked.question, text)
        await self._show_transcript(message, text)
        user = asked.user
        lang = chosen_lang(user.lang, lang)
        model_id, arena = answering_model(asked.prefs, user, registry), arena_on(user, registry)
        verdict = await over_quota(message, asked, model_id, arena, lang, conversations, limits)
        if verdict is None:
            return
        await enqueue_or_answer(bot, queue, message, asked.question, asked.path,
                                chat_row_id=asked.chat_row_id, lang=lang, model_id=model_id,
                                arena=arena, prefs=Preferences.of(asked.prefs, user, registry),
                                exclude=verdict.exhausted)

    @staticmethod
    async def _transcribe(message: Message, bot: Bot, spec: ModelSpec,
                          attachment: dict[str, Any], registry: ModelRegistry,
                          lang: str) -> str | None:
        """The transcript, or None after telling the user why there is none."""
        with contextlib.suppress(TelegramAPIError):
            await bot.send_chat_action(message.chat.id, "typing",
                                       message_thread_id=topic_of(message))
        video = attachment["kind"] == "video_note"
        name = "video_note.mp4" if video else "voice.ogg"
        try:
            audio = await download(bot, attachment["file_id"])
            text = await transcribe(spec, registry.keys.key_for(spec), audio, name,
                                    attachment["mime_type"])
        except MediaRefused as exc:
            log.info("voice of message %s refused: %s", message.message_id, exc)
            await _say(message, exc.key, lang)
            return None
        except (BackendError, KeyRefused) as exc:
            log.warning("transcription by %s failed: %s", spec.id, exc)
            await _say(message, "voice_failed", lang)
            return None
        text = clean_text(text).strip()
        if not text:
            await _say(message, "voice_empty", lang)
        return text or None

    @staticmethod
    async def _show_transcript(message: Message, text: str) -> None:
        shown = text if len(text) <= TRANSCRIPT_SHOWN else text[:TRANSCRIPT_SHOWN] + "…"
        italic = MessageEntity(type="italic", offset=utf16_len(MIC), length=utf16_len(shown))
        with contextlib.suppress(TelegramAPIError):
            await message.reply(MIC + shown, entities=[italic], parse_mode=None)

    async def switch_for_image(self, query: CallbackQuery, callback_data: VisionSwitch,
                               bot: Bot, db_user: User, chat_prefs: ChatPrefs, lang: str,
                               registry: ModelRegistry,
                               users: UserRepository, answerer: Answerer,
                               conversations: ConversationRepository, limits: Limits) -> None:
        """Switch the presser to the vision model, then answer their photo question if the
        conversation is still at it."""
        spec = next((m for m in registry.vision_models() if m.id == callback_data.model_id),
                    None)
        message = query.message
        if spec is None or not isinstance(message, Message):
            await query.answer(t("model_gone", lang), show_alert=True)
            return
        await users.set_model(db_user.id, spec.id)
        await query.answer(t("model_set", lang, model=spec.title))
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_text(t("model_set", lang, model=spec.title), parse_mode=None,
                                    reply_markup=None)
        question = await conversations.get_message(callback_data.question_id)
        if (question is None or question.role != "user" or question.author_id != db_user.id
                or not images_of(question.attachments)):
            return
        sent = await conversations.deliveries(question.id)
        if not sent or sent[0].tg_chat_id != message.chat.id:
            return
        refusal = await limits.admit(db_user, spec.id, lang)
        if refusal is not None:
            with contextlib.suppress(TelegramAPIError):
                await message.answer(refusal, parse_mode=None)
            return
        chat, topic = message.chat, topic_of(message)
        async with answerer.chat_lock(chat.id, topic, wait=SWITCH_WAIT) as free:
            if not free or not await conversations.is_open_head(question.id):
                return  # the conversation went on: the new model answers what comes next
            path = await conversations.path_to(question.id)
            turn = Turn(chat_id=chat.id, chat_type=chat.type, thread_id=topic,
                        reply_to=sent[0].tg_message_id if chat.type != ChatType.PRIVATE else None,
                        lang=lang, prefs=Preferences.of(chat_prefs, db_user, registry))
            await answerer.answer(bot, turn, question, spec.id, path=path)


def build_router() -> Router:
    router = Router(name="media")
    handlers = MediaHandlers()
    is_image_file = F.document.mime_type.func(
        lambda mime: isinstance(mime, str) and mime.lower().startswith("image/"))
    router.message.register(handlers.on_image, Inline(F.photo), MediaFor(),
                            flags={STORES_AUTHOR: True})
    router.message.register(handlers.on_image, Inline(is_image_file), MediaFor(),
                            flags={STORES_AUTHOR: True})
    router.message.register(handlers.on_voice, Inline(F.voice | F.video_note), MediaFor(),
                            flags={STORES_AUTHOR: True})
    router.callback_query.register(handlers.switch_for_image, VisionSwitch.filter(),
                                   Inline(F.message))
    return router

