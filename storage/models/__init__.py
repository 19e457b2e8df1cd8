"""Every table, importable from one place (Alembic's env imports this to see them all)."""

from storage.models.admin import AuditEntry, ModelOverride
from storage.models.core import (
    UNSHOWN_STATUSES,
    Chat,
    Conversation,
    Message,
    MessageDelivery,
    User,
)
from storage.models.feedback import AnswerEdit, Battle, Vote

__all__ = [
    "UNSHOWN_STATUSES",
    "AnswerEdit",
    "AuditEntry",
    "Battle",
    "Chat",
    "Conversation",
    "Message",
    "MessageDelivery",
    "ModelOverride",
    "User",
    "Vote",
]
