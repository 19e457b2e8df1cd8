"""The one interface every model backend implements, and the values it streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)
class TextDelta:
    """A piece of answer text, as it arrived from the model."""

    text: str


@dataclass(slots=True)
class Finished:
    """The stream ended normally."""

    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)


StreamEvent = TextDelta | Finished


class ChatBackend(Protocol):
    """Streams one chat completion. Raises `inference.errors.BackendError` subclasses.

    `key` identifies the conversation (routing keeps one on the same replica, for its cache).
    """

    def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
