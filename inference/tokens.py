"""Counting tokens the way the model will: its server's tokenizer, tiktoken, or an estimate.

- vLLM servers count for us (`POST /tokenize`, also in chat form with the template applied):
  see `inference.replicas.ReplicaSetBackend`.
- OpenAI models: tiktoken's encoding for the model (o200k_base, cl100k_base, …), when its file
  can be loaded (it is downloaded once, or read from TIKTOKEN_CACHE_DIR offline).
- Anything else: `script_estimate`, a deliberately pessimistic per-script estimate (CJK and
  Cyrillic cost more tokens per character than Latin).

Images (content parts of vision models' requests) are not counted by any tokenizer here: each
costs a fixed `IMAGE_TOKENS`, OpenAI's figure for a high-detail 512 px tile set (85 + 4 × 170),
which the bot's resized images (long side ≤ 2048 px) do not exceed by much on current models.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from inference.protocol import ChatMessage

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 4  # role markers and separators of a chat template, roughly
IMAGE_TOKENS = 765  # an image part, estimated (see the module docstring)

# Tokens per character by script, pessimistic for BPE tokenizers of current models: ASCII
# words run ~4 characters a token, Cyrillic, Greek and other alphabets ~2, CJK ~1 (some
# tokenizers spend more), emoji and rare symbols several.
_ASCII, _ALPHABET, _CJK, _OTHER = 0.34, 0.6, 1.5, 2.0
_CJK_PREFIXES = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC")


def _char_cost(char: str) -> float:
    if char.isascii():
        return _ASCII
    name = unicodedata.name(char, "")
    if name.startswith(_CJK_PREFIXES):
        return _CJK
    if char.isalpha() or char.isspace() or unicodedata.category(char).startswith(("M", "P")):
        return _ALPHABET
    return _OTHER


def script_estimate(text: str) -> int:
    """Tokens `text` may take, estimated from its scripts (rounded up)."""
    return int(sum(_char_cost(c) for c in text)) + 1


def text_of(content: str | list[Any]) -> str:
    """The text of a message's content: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content
                     if isinstance(p, dict) and p.get("type") == "text")


def image_count(content: str | list[Any]) -> int:
    """How many image parts a message's content has."""
    if isinstance(content, str):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")


class TokenCounter(Protocol):
    """Counts tokens for one model."""

    async def count(self, text: str) -> int:
        """Tokens of `text` as message content (no special tokens)."""

    async def count_chat(self, messages: list[ChatMessage]) -> int | None:
        """Tokens of the whole prompt with the chat template applied, if this counter knows the
        template (None otherwise)."""


class EstimateCounter:
    """No tokenizer: the per-script estimate."""

    async def count(self, text: str) -> int:
        return script_estimate(text)

    async def count_chat(self, messages: list[ChatMessage]) -> int | None:
        return None


class CachedCounts:
    """Memo of counts by text (a conversation's older messages are counted once)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    async def get(self, text: str, compute: Callable[[str], Awaitable[int]]) -> int:
        found = self._counts.get(text)
        if found is not None:
            self._counts.move_to_end(text)
            return found
        value = await compute(text)
        self._counts[text] = value
        if len(self._counts) > self._size:
            self._counts.popitem(last=False)
        return value


def tiktoken_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (`openai/gpt-4o` too), or None."""
    try:
        import tiktoken.model
    except ImportError:
        return None
    name = model.rsplit("/", 1)[-1]
    try:
        return tiktoken.model.encoding_name_for_model(name)
    except KeyError:
        return None


class TiktokenCounter:
    """OpenAI models: tiktoken, loaded on first use off the event loop. If the encoding cannot
    be loaded (no network and no TIKTOKEN_CACHE_DIR), counts fall back to the estimate."""

    def __init__(self, encoding_name: str) -> None:
        self.encoding_name = encoding_name
        self._encoding: Any = None
        self._failed = False
        self._lock = asyncio.Lock()
        self._cache = CachedCounts()

    async def _load(self) -> Any:
        async with self._lock:
            if self._encoding is None and not self._failed:
                import tiktoken

                try:
                    self._encoding = await asyncio.to_thread(tiktoken.get_encoding,
                                                             self.encoding_name)
                except Exception as exc:  # offline without a cache, corrupt file, …
                    log.warning("tiktoken %s unavailable (%s); estimating token counts",
                                self.encoding_name, exc)
                    self._failed = True
        return self._encoding

    async def count(self, text: str) -> int:
        encoding = await self._load()
        if encoding is None:
            return script_estimate(text)

        async def encode(value: str) -> int:
            if len(value) > 20_000:  # long texts: encode off the event loop
                return len(await asyncio.to_thread(encoding.encode, value,
                                                   disallowed_special=()))
            return len(encoding.encode(value, disallowed_special=()))

        return await self._cache.get(text, encode)

    async def count_chat(self, messages: list[ChatMessage]) -> int | None:
        return None


def counter_for_model(model: str) -> TokenCounter:
    """tiktoken for OpenAI models, the estimate for the rest (servers that count for us are
    handled by their backends)."""
    name = tiktoken_encoding_name(model)
    return TiktokenCounter(name) if name else EstimateCounter()


class VllmCounter:
    """A vLLM server counts: `POST /tokenize` on a ready replica, content alone (cached) or
    the chat with its template. When no replica answers, the estimate stands in."""

    def __init__(self, served_name: str,
                 post: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]) -> None:
        self.served_name = served_name
        self._post = post  # (path, body) → JSON answer of a ready replica, or None
        self._cache = CachedCounts()

    async def _tokenize(self, body: dict[str, Any]) -> int | None:
        answer = await self._post("/tokenize", {"model": self.served_name, **body})
        count = answer.get("count") if answer else None
        return count if isinstance(count, int) else None

    async def count(self, text: str) -> int:
        async def ask(value: str) -> int:
            found = await self._tokenize({"prompt": value, "add_special_tokens": False})
            return found if found is not None else script_estimate(value)

        return await self._cache.get(text, ask)

    async def count_chat(self, messages: list[ChatMessage]) -> int | None:
        if any(image_count(m.content) for m in messages):
            # The server would fetch and process every image just to count: the estimate
            # per image stands in (`fit_to_context` counts text and images apart).
            return None
        return await self._tokenize({
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "add_generation_prompt": True,
        })
