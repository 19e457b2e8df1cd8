"""Reasoning written inside the answer: `<think>…</think>` at the start of a model's content.

Models served without a reasoning parser (Qwen3, DeepSeek-R1 distills on a plain vLLM or
llama.cpp) stream their thinking as ordinary content. `ThinkSplitter` turns such a stream
into reasoning and answer pieces as it arrives; the tags may be cut anywhere between chunks.

Rules: only a stream that *starts* (after whitespace) with `<think>` has reasoning; any other
stream is plain text from the first character, tags and all. Reasoning ends at the first
`</think>`; the whitespace right after it is dropped. A think never closed is reasoning to the
end (the model ran out of tokens while thinking): the answer is then empty.
"""

from __future__ import annotations

from inference.protocol import ReasoningDelta, TextDelta

OPEN = "<think>"
CLOSE = "</think>"

Piece = TextDelta | ReasoningDelta


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkSplitter:
    """Feed content pieces in order; get reasoning and answer pieces back."""

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        # "start": not yet known whether a think opens; "think": inside it; "gap": just after
        # it (whitespace dropped); "text": the answer, passed through as it comes.
        self._state = "start"
        self._held = ""

    def feed(self, text: str) -> list[Piece]:
        if self._state == "text":  # the hot path: a plain answer, no copies
            return [TextDelta(text)] if text else []
        out: list[Piece] = []
        held = self._held + text
        self._held = ""
        if self._state == "start":
            stripped = held.lstrip()
            if stripped.startswith(OPEN):
                self._state = "think"
                held = stripped[len(OPEN):].lstrip("\r\n")
            elif OPEN.startswith(stripped):  # "", "<", "<th", …: wait for more
                self._held = held
                return out
            else:
                self._state = "text"
                return [TextDelta(held)]
        if self._state == "think":
            end = held.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(held, CLOSE)
                reasoning, self._held = held[:len(held) - keep], held[len(held) - keep:]
                if reasoning:
                    out.append(ReasoningDelta(reasoning))
                return out
            reasoning = held[:end].rstrip()
            if reasoning:
                out.append(ReasoningDelta(reasoning))
            self._state = "gap"
            held = held[end + len(CLOSE):]
        if self._state == "gap":
            held = held.lstrip()
            if not held:
                return out
            self._state = "text"
        if held:
            out.append(TextDelta(held))
        return out

    def flush(self) -> list[Piece]:
        """What is still held at the end of the stream."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self._state == "start":  # e.g. an answer that is just "<th"
            self._state = "text"
            return [TextDelta(held)] if held.strip() else []
        if self._state == "think":  # a think never closed: "</thi" was reasoning after all
            return [ReasoningDelta(held)]
        return []
