"""Streaming token ids as text (no torch needed)."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns a growing list of generated ids into text deltas.

    It decodes the whole answer each time and hands out the new suffix, so merges across
    tokens (multi-byte characters, word pieces) come out right. A trailing U+FFFD usually
    means a character whose bytes have not all arrived yet: it is held back until the next
    tokens resolve it, and if none do (the answer was cut inside the character) it is never
    shown. That is what vLLM writes for the same ids (tokenizers' `DecodeStream`), so a model
    reads the same served by vLLM or by this engine.
    """

    def __init__(self, tokenizer: Any, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._sent = ""

    def push(self, ids: list[int]) -> str:
        """Add generated ids; return the text that is now certain. Nothing is left to flush
        at the end: whatever is still held back then is an unfinished character."""
        self._ids.extend(ids)
        return self._delta()

    def _delta(self) -> str:
        text = self._tokenizer.decode(self._ids, skip_special_tokens=self._skip)
        text = text.rstrip(REPLACEMENT)
        if len(text) <= len(self._sent):
            return ""
        # Normally `text` extends what was sent; if decoding rewrote earlier text, what was
        # sent cannot be taken back, so only the part beyond it goes out.
        delta = text[len(self._sent) :]
        self._sent = text
        return delta
