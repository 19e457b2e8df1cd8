"""Model Markdown → Telegram text + entities, and splitting into messages Telegram accepts.

Conversion is telegramify-markdown's; this module only decides where long answers are cut.
"""

from __future__ import annotations

import re
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


# An answer longer than MAX_PARTS messages is shown as its first KEEP_PARTS messages' worth,
# and the rest goes to the chat as a Markdown file (a flood of messages helps nobody).
MAX_PARTS = 4
KEEP_PARTS = 3
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


@dataclass(slots=True)
class Layout:
    """How an answer is delivered: `parts` as messages, then `rest` (Markdown) as a file."""

    parts: list[Chunk]
    rest: str | None = None


def _fenced(markdown: str, end: int) -> list[tuple[int, int, str]]:
    """Code blocks in markdown[:end] as (start, stop, opening line); one left open stops at
    `end`. A block closes at a fence of its own character at least as long as its opening."""
    spans: list[tuple[int, int, str]] = []
    opened: tuple[int, str, str] | None = None  # start, marker, opening line
    for match in _FENCE.finditer(markdown, 0, end):
        marker = match.group(1)
        if opened is None:
            line_end = markdown.find("\n", match.start())
            line = markdown[match.start():line_end if line_end >= 0 else len(markdown)]
            opened = (match.start(), marker, line)
        elif marker[0] == opened[1][0] and len(marker) >= len(opened[1]):
            spans.append((opened[0], match.end(), opened[2]))
            opened = None
    if opened is not None:
        spans.append((opened[0], end, opened[2]))
    return spans


def cut_markdown(markdown: str, budget: int) -> tuple[str, str]:
    """Split Markdown source at most `budget` characters in: at a paragraph boundary outside
    code blocks, else a line boundary; inside one long code block, the block is closed in the
    head and reopened in the rest."""
    if len(markdown) <= budget:
        return markdown, ""
    fences = _fenced(markdown, budget)

    def inside(pos: int) -> tuple[int, int, str] | None:
        return next((f for f in fences if f[0] < pos < f[1]), None)

    for separator in ("\n\n", "\n"):
        pos = markdown.rfind(separator, 0, budget)
        while pos > 0:
            if inside(pos) is None:
                return markdown[:pos].rstrip(), markdown[pos:].lstrip("\n")
            pos = markdown.rfind(separator, 0, pos)
    pos = markdown.rfind("\n", 0, budget)
    pos = pos if pos > 0 else budget
    head, rest = markdown[:pos], markdown[pos:].lstrip("\n")
    fence = inside(pos)
    if fence is not None:
        opening = fence[2].strip()
        closing = opening[: len(opening) - len(opening.lstrip(opening[0]))]
        head, rest = f"{head}\n{closing}", f"{fence[2]}\n{rest}"
    return head, rest


def layout(markdown: str, header: Chunk | None = None, limit: int = MESSAGE_LIMIT) -> Layout:
    """The final delivery of an answer: up to MAX_PARTS messages; beyond that KEEP_PARTS
    messages' worth of its beginning (cut between paragraphs) and the rest as a file.
    A very long answer is rendered only as far as its messages go."""
    if utf16_len(markdown) <= 2 * MAX_PARTS * limit:
        parts = compose(markdown, header, limit)
        if len(parts) <= MAX_PARTS:
            return Layout(parts)
    budget = KEEP_PARTS * limit
    while True:
        head, rest = cut_markdown(markdown, budget)
        parts = compose(head, header, limit)
        if len(parts) <= KEEP_PARTS or budget <= limit:
            return Layout(parts, rest if rest.strip() else None)
        budget = max(limit, budget * 3 // 4)


def frame_parts(markdown: str, header: Chunk | None = None,
                limit: int = MESSAGE_LIMIT) -> list[Chunk]:
    """The parts a progress frame shows: at most KEEP_PARTS from the beginning, rendering only
    about as much text as they can hold (frames come often; a long answer is not re-rendered
    whole each time)."""
    head, _ = cut_markdown(markdown, 2 * KEEP_PARTS * limit)
    return compose(head, header, limit)[:KEEP_PARTS]


def frame_tail(markdown: str, header: Chunk | None = None,
               limit: int = MESSAGE_LIMIT) -> tuple[int, Chunk] | None:
    """The part a draft frame shows (the one being written) and its number. A long answer's
    end is rendered alone, from a paragraph boundary: frames come often, and re-rendering
    hundreds of kilobytes each time would hold up every other chat."""
    if utf16_len(markdown) <= 2 * MAX_PARTS * limit:
        parts = compose(markdown, header, limit)
        return (len(parts) - 1, parts[-1]) if parts else None
    start = markdown.rfind("\n\n", 0, len(markdown) - limit // 2)
    parts = compose(markdown[start if start > 0 else len(markdown) - limit:], None, limit)
    return (len(markdown) // limit, parts[-1]) if parts else None


# The final message shows this much of the reasoning (the start of it), collapsed; all of it
# is stored. Live frames show the end of it, about this much.
REASONING_SHOWN = 1000
REASONING_LIVE = 1500


def shorten(text: str, limit: int, *, keep_end: bool = False) -> str:
    """`text` cut to about `limit` characters at a space, marked with "…" where it was cut."""
    if len(text) <= limit:
        return text
    if keep_end:
        tail = text[-limit:]
        space = tail.find(" ")
        return "…" + (tail[space + 1:] if 0 <= space < limit // 5 else tail)
    head = text[:limit]
    space = head.rfind(" ")
    return (head[:space] if space > limit * 4 // 5 else head).rstrip() + "…"


def reasoning_quote(reasoning: str, label: str, limit: int = REASONING_SHOWN) -> Chunk:
    """The reasoning above a final answer: a collapsed (expandable) quote opening with `label`
    in bold, then the start of the reasoning, plain (it is not the answer: no formatting)."""
    label_len = utf16_len(label)
    text = f"{label}\n{shorten(reasoning.strip(), limit)}"
    return Chunk(text, [
        MessageEntity(type="expandable_blockquote", offset=0, length=utf16_len(text)),
        MessageEntity(type="bold", offset=0, length=label_len),
    ])


def live_reasoning(reasoning: str, label: str, header: Chunk | None = None,
                   limit: int = REASONING_LIVE) -> Chunk:
    """A frame while the model thinks: `label` in italics, then the end of its reasoning in a
    quote (bounded: well under a message's limit, whatever the reasoning's length)."""
    body = shorten(reasoning.strip(), limit, keep_end=True)
    head = Chunk(label, [MessageEntity(type="italic", offset=0, length=utf16_len(label))])
    if header is not None:
        head = concat(concat(header, Chunk("\n\n")), head)
    quote = Chunk(body, [MessageEntity(type="blockquote", offset=0, length=utf16_len(body))])
    return concat(concat(head, Chunk("\n")), quote) if body else head


def with_reasoning(header: Chunk | None, quote: Chunk | None) -> Chunk | None:
    """The first part's header of an answer with reasoning: the (arena) header, then the
    collapsed reasoning."""
    if quote is None:
        return header
    return quote if header is None else concat(concat(header, Chunk("\n\n")), quote)
