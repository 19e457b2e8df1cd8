"""Fitting a conversation into a model's context window."""

from __future__ import annotations

from inference.errors import ContextTooLong
from inference.protocol import ChatMessage

# A deliberately pessimistic estimate: about three characters a token, plus framing per message.
CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4


def estimate_tokens(message: ChatMessage) -> int:
    return len(message.content) // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE


def fit_to_context(
    messages: list[ChatMessage], context_window: int, reserve_for_answer: int
) -> list[ChatMessage]:
    """Drop the oldest turns (never the system prompt or the last message) until they fit.

    Raises `ContextTooLong` when the system prompt and the last message alone do not fit.
    """
    budget = context_window - reserve_for_answer
    system = [m for m in messages[:1] if m.role == "system"]
    turns = messages[len(system) :]
    if not turns:
        return list(messages)
    used = sum(estimate_tokens(m) for m in system) + estimate_tokens(turns[-1])
    if used > budget:
        raise ContextTooLong("the message alone does not fit the context window")
    kept: list[ChatMessage] = [turns[-1]]
    for message in reversed(turns[:-1]):
        cost = estimate_tokens(message)
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    # A history must not start with an orphaned answer.
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
    return system + kept
