"""Every table, importable from one place (Alembic's env imports this to see them all)."""

from storage.models.core import Chat, Conversation, Message, MessageDelivery, User
from storage.models.feedback import AnswerEdit, Battle, Vote

__all__ = [
    "AnswerEdit",
    "Battle",
    "Chat",
    "Conversation",
    "Message",
    "MessageDelivery",
    "User",
    "Vote",
]
