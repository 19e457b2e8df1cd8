"""The one interface every model backend implements, and the values it streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant"]
# An OpenAI content part: {"type": "text", "text": …} or
# {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,…"}}.
ContentPart = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    # Text, or content parts (a user turn with images, for vision models).
    content: str | list[ContentPart]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)
class TextDelta:
    """A piece of answer text, as it arrived from the model."""

    text: str


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (thinking), apart from the answer: `reasoning_content`
    / `reasoning` deltas, or text inside `<think>…</think>`."""

    text: str


@dataclass(slots=True)
class DecodingStats:
    """What speculative (assisted) decoding did for one answer of the local engine.

    A verification step is one target forward pass over the k drafted tokens (plus the
    position after them); it keeps the accepted prefix and adds one token of the target's own.
    """

    generated_tokens: int = 0
    target_passes: int = 0
    verify_steps: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float | None:
        """Share of drafted tokens the target accepted."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None

    @property
    def mean_acceptance_length(self) -> float | None:
        """Tokens produced per verification step: 1 + accepted per step (k + 1 at best)."""
        return 1 + self.accepted_tokens / self.verify_steps if self.verify_steps else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.generated_tokens / self.seconds if self.seconds > 0 else None

    def add(self, other: DecodingStats) -> None:
        """Add another answer's counts to these (totals per model)."""
        self.generated_tokens += other.generated_tokens
        self.target_passes += other.target_passes
        self.verify_steps += other.verify_steps
        self.drafted_tokens += other.drafted_tokens
        self.accepted_tokens += other.accepted_tokens
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "generated_tokens": self.generated_tokens,
            "target_passes": self.target_passes,
            "verify_steps": self.verify_steps,
            "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
            "seconds": round(self.seconds, 4),
            "acceptance_rate": self.acceptance_rate,
            "mean_acceptance_length": self.mean_acceptance_length,
            "tokens_per_s": self.tokens_per_s,
        }


@dataclass(slots=True)
class Finished:
    """The stream ended normally."""

    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)
    # Set by the local engine: what assisted decoding did for this answer.
    decoding: DecodingStats | None = None


StreamEvent = TextDelta | ReasoningDelta | Finished


class ChatBackend(Protocol):
    """Streams one chat completion. Raises `inference.errors.BackendError` subclasses.

    `key` identifies the conversation (routing keeps one on the same replica, for its cache).
    """

    def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
