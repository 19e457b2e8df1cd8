"""/new: close the chat's (or the topic's) conversation so the next message starts afresh."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.addressing import topic_of
from bot.prefs import answering_model
from bot.queueing import QuestionQueue
from bot.texts import t
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.conversations import ConversationRepository
from storage.repositories.users import ChatPrefs


async def new_conversation(message: Message, db_user: User, chat_row_id: int,
                           chat_prefs: ChatPrefs, lang: str,
                           conversations: ConversationRepository,
                           registry: ModelRegistry, queue: QuestionQueue) -> None:
    await conversations.close_active(chat_row_id, topic_of(message))  # this topic's only
    dropped = await queue.clear(message.chat.id, topic_of(message))  # asked in the old one
    model = registry.spec(answering_model(chat_prefs, db_user, registry)).title
    text = t("new_conversation", lang, model=model)
    if dropped:
        text += "\n\n" + t("queue_dropped", lang, count=dropped)
    await message.answer(text, parse_mode=None)


def build_router() -> Router:
    router = Router(name="conversation")
    router.message.register(new_conversation, Command("new"))
    return router
