"""Model Markdown → Telegram text + entities, and splitting into messages Telegram accepts.

Conversion is telegramify-markdown's; this module only decides where long answers are cut.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import telegramify_markdown
from aiogram.types import MessageEntity

# Telegram's limit is 4096 UTF-16 units after entity parsing; keep a margin for safety.
MESSAGE_LIMIT = 4000
_BLOCKS = {"pre", "code", "blockquote", "expandable_blockquote"}


@dataclass(slots=True)
class Chunk:
    """One Telegram message's worth of text with entities in UTF-16 offsets."""

    text: str
    entities: list[MessageEntity] = field(default_factory=list)

    def key(self) -> tuple:
        """What Telegram compares for "message is not modified"."""
        return self.text, tuple(
            (e.type, e.offset, e.length, e.url, e.language) for e in self.entities
        )


def utf16_len(text: str) -> int:
    return telegramify_markdown.utf16_len(text)


def _utf16_offsets(text: str) -> list[int]:
    offsets = [0] * (len(text) + 1)
    total = 0
    for i, ch in enumerate(text):
        offsets[i] = total
        total += 2 if ord(ch) > 0xFFFF else 1
    offsets[len(text)] = total
    return offsets


def render(markdown: str) -> Chunk:
    """Convert model Markdown to plain text and entities (no parse_mode needed)."""
    text, entities = telegramify_markdown.convert(markdown)
    return Chunk(
        text,
        [
            MessageEntity(
                type=e.type, offset=e.offset, length=e.length, url=e.url, language=e.language,
                custom_emoji_id=e.custom_emoji_id,
            )
            for e in entities
        ],
    )


def _split_points(text: str, offsets: list[int], start: int, end_max: int,
                  blocks: list[tuple[int, int]]) -> int | None:
    """The best place to cut text[start:end_max]: paragraph, then line outside code, then line."""

    def inside_block(index: int) -> bool:
        unit = offsets[index]
        return any(lo < unit < hi for lo, hi in blocks)

    for separator, avoid_blocks in (("\n\n", True), ("\n", True), ("\n", False)):
        pos = text.rfind(separator, start, end_max)
        while pos > start:
            cut = pos + len(separator)
            if cut <= end_max and not (avoid_blocks and inside_block(cut)):
                return cut
            pos = text.rfind(separator, start, pos)
    return None


def split(chunk: Chunk, limit: int = MESSAGE_LIMIT) -> list[Chunk]:
    """Split into messages of at most `limit` UTF-16 units, preferring paragraph and code-block
    boundaries; entities crossing a cut are clipped into both parts. Whitespace-only parts vanish.
    """
    text = chunk.text
    offsets = _utf16_offsets(text)
    blocks = [(e.offset, e.offset + e.length) for e in chunk.entities if e.type in _BLOCKS]
    ranges: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        if offsets[n] - offsets[start] <= limit:
            ranges.append((start, n))
            break
        end_max = bisect_right(offsets, offsets[start] + limit) - 1
        cut = _split_points(text, offsets, start, end_max, blocks) or end_max
        ranges.append((start, cut))
        start = cut
    parts: list[Chunk] = []
    for lo, hi in ranges:
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
        if hi <= lo:
            continue
        a, b = offsets[lo], offsets[hi]
        entities = []
        for e in chunk.entities:
            s, t = max(e.offset, a), min(e.offset + e.length, b)
            if t > s:
                entities.append(e.model_copy(update={"offset": s - a, "length": t - s}))
        parts.append(Chunk(text[lo:hi], entities))
    return parts


def render_parts(markdown: str, limit: int = MESSAGE_LIMIT) -> list[Chunk]:
    """Markdown → the list of messages to send. Falls back to plain text if conversion fails."""
    try:
        rendered = render(markdown)
    except Exception:  # a converter bug must not lose the answer
        rendered = Chunk(markdown)
    return split(rendered, limit)


def plain(chunk: Chunk) -> Chunk:
    return Chunk(chunk.text, [])


def concat(first: Chunk, second: Chunk) -> Chunk:
    shift = utf16_len(first.text)
    return Chunk(
        first.text + second.text,
        [*first.entities,
         *(e.model_copy(update={"offset": e.offset + shift}) for e in second.entities)],
    )


def compose(markdown: str, header: Chunk | None = None, limit: int = MESSAGE_LIMIT) -> list[Chunk]:
    """Parts of an answer, with an optional header line on the first part.

    The header does not move the cuts, so it can later be replaced in place (arena reveals).
    """
    if header is None:
        return render_parts(markdown, limit)
    head = concat(header, Chunk("\n\n"))
    parts = render_parts(markdown, limit - utf16_len(head.text))
    return [concat(head, parts[0]), *parts[1:]] if parts else [header]
