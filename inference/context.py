"""Fitting a conversation into a model's context window."""

from __future__ import annotations

from dataclasses import dataclass

from inference.errors import ContextTooLong
from inference.protocol import ChatMessage
from inference.tokens import (
    IMAGE_TOKENS,
    TOKENS_PER_MESSAGE,
    EstimateCounter,
    TokenCounter,
    image_count,
    text_of,
)


@dataclass(frozen=True, slots=True)
class Fitted:
    """The messages to send, and how many earlier turns' messages were left out."""

    messages: list[ChatMessage]
    dropped: int = 0


async def fit_to_context(
    messages: list[ChatMessage], context_window: int, reserve_for_answer: int,
    counter: TokenCounter | None = None,
) -> Fitted:
    """Drop the oldest turns (never the system prompt or the last message) until they fit.

    Messages are counted with `counter` (the model's tokenizer where there is one). A counter
    that knows the chat template checks the result as the server will count it, and older
    turns go until that count fits too. Raises `ContextTooLong` when the system prompt and
    the last message alone do not fit.
    """
    counter = counter or EstimateCounter()
    budget = context_window - reserve_for_answer
    system = [m for m in messages[:1] if m.role == "system"]
    turns = messages[len(system):]
    if not turns:
        return Fitted(list(messages))

    # A counter that knows the template answers for the whole prompt in one call: the usual
    # case (it fits) costs the server one count per turn, not one per new message.
    whole = await counter.count_chat(messages)
    if whole is not None and whole <= budget:
        return Fitted(list(messages))

    async def cost(message: ChatMessage) -> int:
        # Content parts: their text, plus a fixed estimate per image (`IMAGE_TOKENS`).
        return (await counter.count(text_of(message.content)) + TOKENS_PER_MESSAGE
                + IMAGE_TOKENS * image_count(message.content))

    used = sum([await cost(m) for m in system]) + await cost(turns[-1])
    if used > budget:
        raise ContextTooLong("the message alone does not fit the context window")
    kept: list[ChatMessage] = [turns[-1]]
    for message in reversed(turns[:-1]):
        needed = await cost(message)
        if used + needed > budget:
            break
        kept.append(message)
        used += needed
    kept.reverse()
    _drop_orphans(kept)
    while (exact := await counter.count_chat(system + kept)) is not None and exact > budget:
        if len(kept) == 1:
            raise ContextTooLong("the message alone does not fit the context window")
        kept.pop(0)
        _drop_orphans(kept)
    return Fitted(system + kept, dropped=len(turns) - len(kept))


def _drop_orphans(kept: list[ChatMessage]) -> None:
    """A history must not start with an answer whose question was left out."""
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
