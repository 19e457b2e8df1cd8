"""The message trees of a batch of conversations, and the contexts rows are built from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.exports.policy import IMAGE, RowPolicy
from storage.models import Message

Turn = dict[str, str]
Tagger = Callable[[str], str]  # a text's language tag (storage.exports.language)
HUMAN = "human"  # the "model" of an answer a user wrote  # {"role": ..., "content": ...}


# A message is a row of (id, parent_id, role, content, status, model_id, system_prompt,
# origin, images, author_id), read by index: asyncpg records and SQLAlchemy rows both are
# such sequences.
Node = Sequence[Any]
PARENT, ROLE, CONTENT, STATUS, MODEL, SYSTEM, ORIGIN, IMAGES, AUTHOR = range(1, 10)
IMAGE_MARKER = "[image]"
_COLUMNS = (Message.id, Message.parent_id, Message.role, Message.content, Message.status,
            Message.model_id, Message.system_prompt, Message.origin)
# Images per message (attachments of kind "image"); attachments themselves stay behind.
_PG_QUERY = (
    "SELECT id, parent_id, role, content, status, model_id, system_prompt, origin, "
    "(SELECT count(*) FROM jsonb_array_elements(CASE jsonb_typeof(attachments) "
    "WHEN 'array' THEN attachments ELSE '[]'::jsonb END) a WHERE a->>'kind' = 'image'), "
    "author_id FROM message WHERE conversation_id = ANY($1::bigint[])"
)


def _image_count(attachments: Any) -> int:
    if not isinstance(attachments, list):
        return 0
    return sum(1 for a in attachments if isinstance(a, dict) and a.get("kind") == "image")


class Forest:
    """Messages of some conversations by id, with (optionally PII-scrubbed) text."""

    def __init__(self, nodes: dict[int, Node], clean: Callable[[str], str] | None,
                 policy: RowPolicy | None = None, tag: Tagger | None = None) -> None:
        self.nodes = nodes
        self._clean = clean
        self._tag = tag or _untagged
        self._policy = policy or RowPolicy({}, unknown_restricted=False)
        # The marks (storage/exports/policy.py: images, forgotten, consent, restricted model,
        # licences) of the turns read since the builder last reset it: what the row being
        # built contains. Turns with images read as "[image]" markers before their text.
        # `judge`: the mark of the judgement the row comes from.
        self.marks = 0
        self.judge = 0
        self._turns: dict[int, tuple[Turn, int]] = {}
        self._languages: dict[int, str] = {}
        self._chains: dict[int, int] = {}

    def turn(self, message_id: int) -> Turn:
        cached = self._turns.get(message_id)
        if cached is None:
            cached = self._turns[message_id] = self._read(message_id)
        self.marks |= cached[1]
        return cached[0]

    def _read(self, message_id: int) -> tuple[Turn, int]:
        node = self.nodes[message_id]
        images = node[IMAGES] if len(node) > IMAGES else 0
        text = self._clean(node[CONTENT]) if self._clean else node[CONTENT]
        if images:
            text = "\n".join(p for p in (" ".join([IMAGE_MARKER] * images), text) if p)
        role = node[ROLE]
        mark = self._policy.message_mark(role, node[ORIGIN], node[MODEL],
                                         node[AUTHOR] if len(node) > AUTHOR else None)
        if images:
            mark |= IMAGE
        return {"role": role, "content": text}, mark

    def parent(self, message_id: int) -> int:
        parent = self.nodes[message_id][PARENT]
        assert parent is not None, "an answer always has its question as parent"
        return parent

    def path(self, message_id: int) -> list[int]:
        """Ids from the conversation's first message down to `message_id`."""
        ids: list[int] = []
        current: int | None = message_id
        nodes = self.nodes
        while current is not None:
            ids.append(current)
            current = nodes[current][PARENT]
        ids.reverse()
        return ids

    def chain(self, message_id: int) -> int:
        """A 64-bit hash of the dialog ending with `message_id` (roles and texts as written
        to the dump), memoised along the path: equal dialogs in different conversations
        hash alike, which is what duplicate removal needs."""
        chains = self._chains
        pending: list[int] = []
        current: int | None = message_id
        while current is not None and current not in chains:
            pending.append(current)
            current = self.nodes[current][PARENT]
        value = 0 if current is None else chains[current]
        for mid in reversed(pending):
            turn = self.turn(mid)
            value = chains[mid] = hash((value, turn["role"], turn["content"]))
        return value

    def dialog(self, message_id: int) -> list[Turn]:
        """The user/assistant turns ending with `message_id`, as `{role, content}` dicts."""
        return [self.turn(i) for i in self.path(message_id)]

    def prompt(self, user_message_id: int, *answer_ids: int) -> list[Turn]:
        """What the model saw before answering: its system prompt and the dialog.

        The system prompt is included when every judged answer was produced with the same
        one (arena rivals may each have their own, and then no single prompt is right).
        """
        dialog = self.dialog(user_message_id)
        systems = {self.nodes[a][SYSTEM] for a in answer_ids}
        if len(systems) == 1:
            (system,) = systems
            if system:
                text = self._clean(system) if self._clean else system
                return [{"role": "system", "content": text}, *dialog]
        return dialog

    def language(self, user_message_id: int) -> str:
        """The language of a question (what a row's `language` reports)."""
        cached = self._languages.get(user_message_id)
        if cached is None:
            cached = self._tag(self.nodes[user_message_id][CONTENT])
            self._languages[user_message_id] = cached
        return cached

    def has_language(self, user_message_id: int) -> bool:
        return user_message_id in self._languages

    def set_language(self, user_message_id: int, language: str) -> None:
        self._languages[user_message_id] = language

    def model(self, message_id: int) -> str | None:
        """Who wrote an answer: its model, or "human" for a user's edit."""
        node = self.nodes[message_id]
        return HUMAN if node[ORIGIN] == "edited" else node[MODEL]

    def content(self, message_id: int) -> str:
        return self.nodes[message_id][CONTENT]

    def complete(self, message_id: int) -> bool:
        node = self.nodes.get(message_id)
        return node is not None and node[ROLE] == "assistant" and (
            node[STATUS] == "complete") and bool(node[CONTENT].strip())


async def load_forest(connection: AsyncConnection, conversation_ids: Iterable[int],
                      clean: Callable[[str], str] | None,
                      policy: RowPolicy | None = None, tag: Tagger | None = None) -> Forest:
    ids = list(conversation_ids)
    if connection.dialect.name == "postgresql":
        # The driver directly: this query carries most of a dump's bytes, and asyncpg's
        # records are half the cost of SQLAlchemy rows here.
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        records = await raw.fetch(_PG_QUERY, ids)  # jit is off for this session: see export
        return Forest({r[0]: r for r in records}, clean, policy, tag)
    result = await connection.execute(sa.select(
        *_COLUMNS, Message.attachments, Message.author_id).where(
        Message.conversation_id.in_(ids)))
    return Forest({r[0]: (*r[:IMAGES], _image_count(r[IMAGES]), r[AUTHOR]) for r in result},
                  clean, policy, tag)


def _untagged(text: str) -> str:
    return "und"


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
