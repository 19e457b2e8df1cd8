"""``MarkdownV2`` and legacy ``Markdown`` parsers modelled on TDLib (same error texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import parse_error
from .textutil import byte_offset, link_entity, units

RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
# TDLib's names for entity types in "Can't find end of <Name> entity" errors.
_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline",
    "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code", "pre": "Pre",
    "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip


@dataclass
class _Open:
    kind: str
    offset: int  # UTF-16 offset in the output
    byte_pos: int  # byte offset of the opening marker in the source
    start: int  # index of the first output character
    language: str = ""


@dataclass
class _Out:
    """Output text under construction with its UTF-16 length."""

    chars: list[str] = field(default_factory=list)
    u16: int = 0

    def emit(self, text: str) -> None:
        self.chars.extend(text)
        self.u16 += sum(units(c) for c in text)

    def since(self, start: int) -> str:
        return "".join(self.chars[start:])


def _skip_pre_header(src: str, i: int) -> tuple[int, str]:
    """After an opening ```: return (index of content, language)."""
    end = i
    while end < len(src) and not src[end].isspace() and src[end] != "`":
        end += 1
    language = ""
    if end != i and end < len(src) and src[end] != "`":
        language, i = src[i:end], end
    if i < len(src) and src[i] in "\r\n":
        pair = src[i : i + 2]
        i += 2 if pair in ("\r\n", "\n\r") else 1
    return i, language


def parse_markdown_v2(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse MarkdownV2 into plain text and entities with UTF-16 offsets."""
    return _MarkdownV2(src).run()


class _MarkdownV2:
    def __init__(self, src: str) -> None:
        self.src, self.i = src, 0
        self.out = _Out()
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []
        self.quote: tuple[int, bool] | None = None  # (offset, expandable) of an open blockquote
        self.line_end = 0  # UTF-16 offset where the previous line's text ended

    def _at(self, k: int) -> str:
        return self.src[k] if k < len(self.src) else ""

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        src = self.src
        while self.i < len(src):
            if self._line_start() and not self._in_code():
                self._quote_marker()
                if self.i >= len(src):
                    break
            c = src[self.i]
            if c == "\n":
                self.line_end = self.out.u16
            nxt = self._at(self.i + 1)
            if c == "\\" and nxt and 0 < ord(nxt) <= 126:
                self.out.emit(nxt)
                self.i += 2
                continue
            reserved = "`" if self._in_code() else RESERVED
            if c not in reserved:
                self.out.emit(c)
                self.i += 1
                continue
            if self._expandable_quote_end():
                continue
            if self.stack and self._closes(self.stack[-1].kind):
                self._end_entity()
            else:
                self._begin_entity()
        if self.stack:
            opened = self.stack[-1]
            name = "PreCode" if opened.language else _NAMES[opened.kind]
            raise parse_error(f"Can't find end of {name} entity at byte offset {opened.byte_pos}")
        if self.quote:
            self._close_quote(self.out.u16)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out.chars), self.entities

    def _in_code(self) -> bool:
        return bool(self.stack) and self.stack[-1].kind in ("code", "pre")

    def _line_start(self) -> bool:
        return self.i == 0 or self.src[self.i - 1] == "\n"

    def _quote_marker(self) -> None:
        """Handle '>' / '**>' at a line start; close an open quote on an unquoted line."""
        if self.src.startswith(">", self.i):
            self.i += 1
            expandable = False
        elif self.src.startswith("**>", self.i):
            self.i += 3
            expandable = True
        else:
            if self.quote and self.i > 0:
                self._close_quote(self.line_end)
            return
        if self.quote is None:
            self.quote = (self.out.u16, expandable)

    def _expandable_quote_end(self) -> bool:
        """'||' ending the last line of an expandable blockquote."""
        if not (self.quote and self.quote[1] and self.src.startswith("||", self.i)):
            return False
        if self._at(self.i + 2) not in ("", "\n"):
            return False
        if self.stack and self.stack[-1].kind == "spoiler":
            return False
        self.i += 2
        self._close_quote(self.out.u16)
        return True

    def _close_quote(self, end: int) -> None:
        assert self.quote is not None
        offset, expandable = self.quote
        self.quote = None
        if end > offset:
            kind = "expandable_blockquote" if expandable else "blockquote"
            self.entities.append({"type": kind, "offset": offset, "length": end - offset})

    def _closes(self, kind: str) -> bool:
        src, i = self.src, self.i
        c, nxt = src[i], self._at(i + 1)
        return {
            "bold": c == "*",
            "italic": c == "_" and nxt != "_",
            "underline": src.startswith("__", i),
            "strikethrough": c == "~",
            "spoiler": src.startswith("||", i),
            "code": c == "`",
            "pre": src.startswith("```", i),
            "text_link": c == "]",
            "custom_emoji": c == "]",
        }[kind]

    def _begin_entity(self) -> None:
        src, i = self.src, self.i
        c = src[i]
        begin = byte_offset(src, i)
        language = ""
        if c == "_" and self._at(i + 1) == "_":
            kind, i = "underline", i + 2
        elif c in "_*~[":
            kind, i = {"_": "italic", "*": "bold", "~": "strikethrough", "[": "text_link"}[c], i + 1
        elif c == "|" and self._at(i + 1) == "|":
            kind, i = "spoiler", i + 2
        elif src.startswith("```", i):
            kind = "pre"
            i, language = _skip_pre_header(src, i + 3)
        elif c == "`":
            kind, i = "code", i + 1
        elif src.startswith("![", i):
            kind, i = "custom_emoji", i + 2
        else:
            raise parse_error(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        self.stack.append(_Open(kind, self.out.u16, begin, len(self.out.chars), language))
        self.i = i

    def _end_entity(self) -> None:
        opened = self.stack.pop()
        kind = opened.kind
        self.i += {"underline": 2, "spoiler": 2, "pre": 3}.get(kind, 1)
        entity: dict[str, Any] = {
            "type": kind,
            "offset": opened.offset,
            "length": self.out.u16 - opened.offset,
        }
        keep = entity["length"] > 0
        if kind in ("text_link", "custom_emoji"):
            inner = self.out.since(opened.start)
            url = self._url() if self._at(self.i) == "(" else None
            if kind == "custom_emoji":
                if url is None or not url.startswith("tg://emoji?id="):
                    raise parse_error("Custom emoji entity must contain a tg://emoji URL")
                entity["custom_emoji_id"] = url.removeprefix("tg://emoji?id=")
            else:
                keep = keep and link_entity(inner if url is None else url, inner, entity)
        elif kind == "pre" and opened.language:
            entity["language"] = opened.language
        if keep:
            self.entities.append(entity)

    def _url(self) -> str:
        self.i += 1
        begin = self.i
        url: list[str] = []
        while self.i < len(self.src) and self.src[self.i] != ")":
            nxt = self._at(self.i + 1)
            if self.src[self.i] == "\\" and nxt and 0 < ord(nxt) <= 126:
                url.append(nxt)
                self.i += 2
            else:
                url.append(self.src[self.i])
                self.i += 1
        if self.i >= len(self.src):
            raise parse_error(
                f"Can't find end of a URL at byte offset {byte_offset(self.src, begin)}"
            )
        self.i += 1
        return "".join(url)


def parse_markdown(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse legacy Markdown (no nesting, no escapes inside entities) like TDLib."""
    out = _Out()
    entities: list[dict[str, Any]] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.emit(src[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.emit(c)
            i += 1
            continue
        begin, end_char = i, "]" if c == "[" else c
        is_pre = src.startswith("```", i)
        i, language = _skip_pre_header(src, i + 3) if is_pre else (i + 1, "")
        offset, start = out.u16, len(out.chars)
        while i < n and (src[i] != end_char or (is_pre and not src.startswith("```", i))):
            out.emit(src[i])
            i += 1
        if i >= n:
            raise parse_error(
                f"Can't find end of the entity starting at byte offset {byte_offset(src, begin)}"
            )
        entity: dict[str, Any] = {"type": "", "offset": offset, "length": out.u16 - offset}
        keep = entity["length"] > 0
        if c == "[":
            inner = out.since(start)
            url = inner
            if src.startswith("(", i + 1):
                close = src.find(")", i + 2)
                close = n if close < 0 else close
                url, i = src[i + 2 : close], close
            keep = keep and link_entity(url, inner, entity)
        elif c == "`":
            entity["type"] = "pre" if is_pre else "code"
            if language:
                entity["language"] = language
        else:
            entity["type"] = "italic" if c == "_" else "bold"
        if keep:
            entities.append(entity)
        i += 3 if is_pre else 1
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out.chars), entities
