"""Token counting for context fitting: the per-script estimate, tiktoken (and its fallback),
and fitting with a counter that knows the chat template."""

from __future__ import annotations

import pytest

from inference.context import fit_to_context
from inference.errors import ContextTooLong
from inference.protocol import ChatMessage
from inference.tokens import (
    TiktokenCounter,
    counter_for_model,
    script_estimate,
    tiktoken_encoding_name,
)


def test_the_estimate_charges_scripts_by_what_tokenizers_spend():
    latin = "The quick brown fox jumps over the lazy dog " * 20
    russian = "Съешь же ещё этих мягких французских булок " * 20
    chinese = "我能吞下玻璃而不伤身体" * 20
    per_char = {name: script_estimate(text) / len(text)
                for name, text in (("latin", latin), ("russian", russian), ("chinese", chinese))}
    assert per_char["latin"] < per_char["russian"] < per_char["chinese"]
    assert 0.25 < per_char["latin"] < 0.4 and per_char["chinese"] >= 1.4
    assert script_estimate("") == 1 and script_estimate("😀") >= 2


def test_openai_models_count_with_tiktoken_and_others_estimate():
    assert tiktoken_encoding_name("gpt-4o-mini") == "o200k_base"
    assert tiktoken_encoding_name("openai/gpt-4.1") == "o200k_base"
    assert tiktoken_encoding_name("gpt-4") == "cl100k_base"
    assert tiktoken_encoding_name("llama-3.1-8b") is None
    assert isinstance(counter_for_model("gpt-4o"), TiktokenCounter)
    assert not isinstance(counter_for_model("qwen2.5-7b"), TiktokenCounter)


class ByteEncoding:
    """A stand-in tiktoken encoding: one token per UTF-8 byte."""

    def encode(self, text: str, disallowed_special=()) -> list[int]:
        return list(text.encode())


async def test_tiktoken_counts_with_the_encoding_and_estimates_when_it_cannot_load(
    monkeypatch, caplog
):
    import tiktoken

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: ByteEncoding())
    assert await TiktokenCounter("o200k_base").count("привет") == 12  # 6 letters, 2 bytes each

    def offline(name: str):
        raise ConnectionError("no route to openaipublic.blob.core.windows.net")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    counter = TiktokenCounter("o200k_base")
    assert await counter.count("hello world") == script_estimate("hello world")
    assert await counter.count("again") == script_estimate("again")  # tried once, not again
    assert sum("tiktoken o200k_base unavailable" in r.getMessage() for r in caplog.records) == 1


class TemplateCounter:
    """A counter that knows a template costing `framing` tokens per message."""

    def __init__(self, framing: int) -> None:
        self.framing = framing
        self.chat_calls = 0

    async def count(self, text: str) -> int:
        return len(text)

    async def count_chat(self, messages: list[ChatMessage]) -> int | None:
        self.chat_calls += 1
        return sum(len(m.content) + self.framing for m in messages)


def conversation(turns: int, size: int) -> list[ChatMessage]:
    messages = [ChatMessage("system", "s" * 10)]
    for i in range(turns):
        messages += [ChatMessage("user", f"{i}" * size), ChatMessage("assistant", "a" * size)]
    return [*messages, ChatMessage("user", "last")]


async def test_fitting_drops_the_oldest_turns_and_says_how_many():
    messages = conversation(10, 50)
    fitted = await fit_to_context(messages, 400, 100, TemplateCounter(4))
    assert fitted.messages[0].role == "system" and fitted.messages[-1].content == "last"
    assert fitted.messages[1].role == "user"
    assert fitted.dropped == len(messages) - len(fitted.messages)
    assert fitted.dropped % 2 == 0 and fitted.dropped > 0
    assert (await fit_to_context(messages[:3] + messages[-1:], 400, 100)).dropped == 0


async def test_a_template_costlier_than_estimated_drops_more_until_the_server_count_fits():
    """The per-message framing guess (4) is low for this template (30): the exact chat count
    makes fitting leave out more turns, so the server never sees a prompt over its limit."""
    messages = conversation(10, 20)
    guessed = await fit_to_context(messages, 400, 100, TemplateCounter(4))
    counter = TemplateCounter(30)
    exact = await fit_to_context(messages, 400, 100, counter)
    assert exact.dropped > guessed.dropped and counter.chat_calls > 1
    assert await counter.count_chat(exact.messages) <= 300
    with pytest.raises(ContextTooLong):
        await fit_to_context([ChatMessage("user", "x" * 290)], 400, 100, TemplateCounter(30))


async def test_a_conversation_that_fits_costs_one_count():
    counter = TemplateCounter(4)
    counted: list[str] = []
    real_count = counter.count

    async def count(text: str) -> int:
        counted.append(text)
        return await real_count(text)

    counter.count = count  # type: ignore[method-assign]
    fitted = await fit_to_context(conversation(2, 10), 400, 100, counter)
    assert fitted.dropped == 0 and counter.chat_calls == 1 and counted == []
