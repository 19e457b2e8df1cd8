"""The message trees of a batch of conversations, and the contexts rows are built from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import Message

Turn = dict[str, str]
HUMAN = "human"  # the "model" of an answer a user wrote  # {"role": ..., "content": ...}


@dataclass(slots=True)
class Node:
    parent_id: int | None
    role: str
    content: str
    status: str
    model_id: str | None
    system_prompt: str | None
    origin: str


class Forest:
    """Messages of some conversations by id, with (optionally PII-scrubbed) text."""

    def __init__(self, nodes: dict[int, Node], clean: Callable[[str], str] | None) -> None:
        self.nodes = nodes
        self._clean = clean
        self._turns: dict[int, Turn] = {}

    def turn(self, message_id: int) -> Turn:
        cached = self._turns.get(message_id)
        if cached is None:
            node = self.nodes[message_id]
            text = self._clean(node.content) if self._clean else node.content
            cached = self._turns[message_id] = {"role": node.role, "content": text}
        return cached

    def path(self, message_id: int) -> list[int]:
        """Ids from the conversation's first message down to `message_id`."""
        ids: list[int] = []
        current: int | None = message_id
        while current is not None:
            ids.append(current)
            current = self.nodes[current].parent_id
        ids.reverse()
        return ids

    def dialog(self, message_id: int) -> list[Turn]:
        """The user/assistant turns ending with `message_id`, as `{role, content}` dicts."""
        return [self.turn(i) for i in self.path(message_id)]

    def prompt(self, user_message_id: int, *answer_ids: int) -> list[Turn]:
        """What the model saw before answering: its system prompt and the dialog.

        The system prompt is included when every judged answer was produced with the same
        one (arena rivals may each have their own, and then no single prompt is right).
        """
        dialog = self.dialog(user_message_id)
        systems = {self.nodes[a].system_prompt for a in answer_ids}
        if len(systems) == 1:
            (system,) = systems
            if system:
                text = self._clean(system) if self._clean else system
                return [{"role": "system", "content": text}, *dialog]
        return dialog

    def model(self, message_id: int) -> str | None:
        """Who wrote an answer: its model, or "human" for a user's edit."""
        node = self.nodes[message_id]
        return HUMAN if node.origin == "edited" else node.model_id

    def complete(self, message_id: int) -> bool:
        node = self.nodes.get(message_id)
        return node is not None and node.role == "assistant" and node.status == "complete" and (
            bool(node.content.strip()))


async def load_forest(connection: AsyncConnection, conversation_ids: Iterable[int],
                      clean: Callable[[str], str] | None) -> Forest:
    query = sa.select(
        Message.id, Message.parent_id, Message.role, Message.content, Message.status,
        Message.model_id, Message.system_prompt, Message.origin,
    ).where(Message.conversation_id.in_(list(conversation_ids)))
    result = await connection.execute(query)
    nodes = {row[0]: Node(*row[1:]) for row in result}
    return Forest(nodes, clean)


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
