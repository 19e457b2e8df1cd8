"""Text messages: each is a turn answered by the user's current model."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

from bot.answering import Answerer, Turn
from bot.cleaning import clean_text
from bot.handlers.arena import arena_on
from bot.streaming.stops import StopSignals
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.conversations import AlreadyStored, ConversationRepository


class AddressedToBot(Filter):
    """Private chats: always. Groups: a mention of the bot or a reply to one of its messages.

    Passes the text with the mention removed as `prompt`.
    """

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, str]:
        text = message.text or ""
        if message.chat.type == ChatType.PRIVATE:
            return {"prompt": text}
        me = await bot.me()
        replied = message.reply_to_message
        if replied is not None and replied.from_user and replied.from_user.id == me.id:
            return {"prompt": text}
        mention = f"@{me.username}".lower() if me.username else None
        for entity in message.entities or []:
            if entity.type == "mention" and mention:
                value = entity.extract_from(text)
                if value.lower() == mention:
                    return {"prompt": text.replace(value, "", 1)}
        return False


async def unknown_command(message: Message, lang: str) -> None:
    await message.answer(t("unknown_command", lang), parse_mode=None)


async def on_text(message: Message, bot: Bot, prompt: str, db_user: User, chat_row_id: int,
                  lang: str, answerer: Answerer, conversations: ConversationRepository,
                  registry: ModelRegistry) -> None:
    prompt = clean_text(prompt).strip()
    if not prompt:
        await message.reply(t("empty", lang), parse_mode=None)
        return
    turn = Turn(
        chat_id=message.chat.id,
        chat_type=message.chat.type,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        reply_to=message.message_id if message.chat.type != ChatType.PRIVATE else None,
        lang=lang,
    )
    async with answerer.chat_lock(message.chat.id) as free:
        conversation = await conversations.active(chat_row_id, db_user.id)
        try:
            stored = await conversations.add_user_message(
                conversation.id, db_user.id, prompt, message.chat.id, message.message_id
            )
        except AlreadyStored:
            return  # Telegram delivered this update twice; it was answered the first time
        if not free:
            # Stored, so it is part of the conversation; the model sees it with the next turn.
            await message.reply(t("busy", lang), parse_mode=None)
            return
        pair = registry.arena_pair(answerer.rng) if arena_on(db_user, registry) else None
        if pair is not None:
            await answerer.battle(bot, turn, stored, asker_id=db_user.id,
                                  chat_row_id=chat_row_id, pair=pair)
        else:
            await answerer.answer(bot, turn, stored, db_user.model_id)


async def not_text(message: Message, lang: str) -> None:
    """Stickers, photos, voice… in private chats get a polite line instead of silence."""
    await message.answer(t("not_text", lang), parse_mode=None)


async def stale_button(query: CallbackQuery, lang: str = "en") -> None:
    """Buttons nothing else understood: malformed, forged or from an older version."""
    await query.answer(t("stale_button", lang), show_alert=True)


async def on_stop(event: MessageGenerationStopped, stops: StopSignals) -> None:
    stops.stop(event.chat.id, event.draft_id)


def build_router() -> Router:
    router = Router(name="chat")
    router.message.register(unknown_command, F.text.startswith("/"))
    router.message.register(on_text, F.text, AddressedToBot())
    router.message.register(not_text, F.chat.type == ChatType.PRIVATE)
    router.stopped_message_generation.register(on_stop)
    router.callback_query.register(stale_button)
    return router
