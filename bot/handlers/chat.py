"""Text messages: each is a turn answered by the user's current model."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

from bot.addressing import NOT_TEXT, AddressedToBot, CommandForUs, topic_of
from bot.cleaning import clean_text
from bot.filters import Inline
from bot.handlers.arena import arena_on
from bot.limits import Limits, over_quota, over_rate
from bot.middlewares.user import STORES_AUTHOR
from bot.prefs import Preferences, answering_model
from bot.queueing import QuestionQueue, enqueue_or_answer
from bot.streaming.stops import StopSignals
from bot.texts import chosen_lang, t
from bot.visible import is_blank
from inference.registry import ModelRegistry
from storage.repositories.conversations import AlreadyStored, ConversationRepository
from storage.repositories.users import TelegramUser


async def unknown_command(message: Message, lang: str) -> None:
    await message.answer(t("unknown_command", lang), parse_mode=None)


async def on_text(message: Message, bot: Bot, prompt: str, author: TelegramUser,
                  lang: str, conversations: ConversationRepository, registry: ModelRegistry,
                  queue: QuestionQueue, limits: Limits) -> None:
    prompt = clean_text(prompt).strip()
    if is_blank(prompt):  # nothing, or only zero-width characters: nothing to answer
        await message.reply(t("empty", lang), parse_mode=None)
        return
    if await queue.full(message, lang):  # said so; not stored, so nothing half-kept
        return
    if await over_rate(message, author, lang, limits):  # said so (once); not stored
        return
    chat = message.chat
    try:
        asked = await conversations.ask(author, (chat.id, chat.type, chat.title),
                                        topic_of(message), prompt, message.message_id)
    except AlreadyStored:
        return  # Telegram delivered this update twice; it was answered the first time
    user = asked.user
    lang = chosen_lang(user.lang, lang)  # read with the question, not before it
    model_id = answering_model(asked.prefs, user, registry)
    arena = arena_on(user, registry)
    verdict = await over_quota(message, asked, model_id, arena, lang, conversations, limits)
    if verdict is None:
        return
    await enqueue_or_answer(bot, queue, message, asked.question, asked.path,
                            chat_row_id=asked.chat_row_id, lang=lang, model_id=model_id,
                            arena=arena, prefs=Preferences.of(asked.prefs, user, registry),
                            exclude=verdict.exhausted)


async def not_text(message: Message, lang: str) -> None:
    """Stickers, photos, voice… in private chats get a polite line instead of silence."""
    await message.answer(t("not_text", lang), parse_mode=None)


async def stale_button(query: CallbackQuery, lang: str = "en") -> None:
    """Buttons nothing else understood: malformed, forged or from an older version."""
    await query.answer(t("stale_button", lang), show_alert=True)


async def on_stop(event: MessageGenerationStopped, stops: StopSignals) -> None:
    # The press may reach another process (a webhook replica) than the one streaming.
    await stops.stop(event.chat.id, event.draft_id)


def build_router() -> Router:
    router = Router(name="chat")
    # The one place that decides about commands no other router took: ours get "I don't
    # know that command", other bots' (and, in groups, bare ones not addressed to us) nothing.
    router.message.register(unknown_command, CommandForUs())
    router.message.register(on_text, Inline(F.text), AddressedToBot(),
                            flags={STORES_AUTHOR: True})
    router.message.register(not_text, Inline(F.chat.type == ChatType.PRIVATE),
                            Inline(F.content_type.in_(NOT_TEXT)))
    router.stopped_message_generation.register(on_stop)
    router.callback_query.register(stale_button)
    return router
