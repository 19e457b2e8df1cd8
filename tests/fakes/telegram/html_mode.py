"""``parse_mode=HTML`` parser modelled on TDLib's ``parse_html`` (same error texts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import parse_error
from .textutil import byte_offset, link_entity, units

# fmt: off
TAG_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji", "tg-time": "date_time",
}
# fmt: on
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#[0-9]{1,10}|#[xX][0-9a-fA-F]{1,8}|[a-zA-Z]{2,4});")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")


@dataclass
class _Open:
    tag: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the output
    start: int  # index of the first output character


def decode_entity(src: str, i: int) -> tuple[str, int] | None:
    """Decode the character reference at ``src[i] == '&'``: (text, next index) or None."""
    match = _ENTITY.match(src, i)
    if not match:
        return None
    name = match.group(1)
    if not name.startswith("#"):
        char = _NAMED.get(name)
        return (char, match.end()) if char else None
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into plain text and entities with UTF-16 offsets."""
    return _HtmlParser(src).run()


class _HtmlParser:
    def __init__(self, src: str) -> None:
        self.src, self.i = src, 0
        self.out: list[str] = []
        self.u16 = 0
        self.nchars = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c == "&" and (decoded := decode_entity(src, self.i)):
                self._emit(decoded[0])
                self.i = decoded[1]
            elif c != "<":
                self._emit(c)
                self.i += 1
            elif src.startswith("</", self.i):
                self._end_tag()
            else:
                self._start_tag()
        if self.stack:
            tag = self.stack[-1].tag
            raise parse_error(f'Can\'t find end tag corresponding to start tag "{tag}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _emit(self, text: str) -> None:
        self.out.append(text)
        self.nchars += len(text)
        self.u16 += sum(units(c) for c in text)

    def _at(self, k: int) -> str:
        return self.src[k] if k < len(self.src) else ""

    def _in_word(self, k: int, stops: str) -> bool:
        """``src[k]`` exists and is neither whitespace nor one of ``stops``."""
        c = self._at(k)
        return bool(c) and not c.isspace() and c not in stops

    def _byte(self, k: int) -> int:
        return byte_offset(self.src, k)

    def _start_tag(self) -> None:
        begin = self.i
        self.i += 1
        while self._in_word(self.i, ">"):
            self.i += 1
        tag = self.src[begin + 1 : self.i].lower()
        if tag not in TAG_TYPES:
            raise parse_error(f'Unsupported start tag "{tag}" at byte offset {self._byte(begin)}')
        attrs = self._attributes(tag, begin)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise parse_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self._byte(begin)}'
            )
        if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise parse_error("Invalid custom emoji identifier specified")
        if tag == "tg-time" and not attrs.get("unix", "").isdigit():
            raise parse_error("Invalid Unix time specified")
        self.stack.append(_Open(tag, attrs, self.u16, self.nchars))

    def _attributes(self, tag: str, begin: int) -> dict[str, str]:
        attrs: dict[str, str] = {}
        while True:
            while self._at(self.i).isspace():
                self.i += 1
            if not self._at(self.i):
                raise parse_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
            if self._at(self.i) == ">":
                self.i += 1
                return attrs
            start = self.i
            while self._in_word(self.i, "=>"):
                self.i += 1
            name = self.src[start : self.i].lower()
            if not name:
                raise parse_error(
                    f'Empty attribute name in the tag "{tag}" at byte offset {self._byte(begin)}'
                )
            while self._at(self.i).isspace():
                self.i += 1
            if self._at(self.i) != "=":
                if tag == "blockquote" and name == "expandable":
                    attrs[name] = ""
                    continue
                raise parse_error(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                    f"at byte offset {self._byte(begin)}"
                )
            self.i += 1
            while self._at(self.i).isspace():
                self.i += 1
            attrs[name] = self._attribute_value(begin)

    def _attribute_value(self, begin: int) -> str:
        quote = self._at(self.i)
        if not quote:
            raise parse_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        if quote not in "'\"":
            match = _NAME_TOKEN.match(self.src, self.i)
            assert match is not None
            self.i = match.end()
            if not (self._at(self.i).isspace() or self._at(self.i) == ">"):
                raise parse_error(
                    f"Unexpected end of name token at byte offset {self._byte(match.start())}"
                )
            return match.group().lower()
        self.i += 1
        value: list[str] = []
        while self._at(self.i) and self._at(self.i) != quote:
            if self._at(self.i) == "&" and (decoded := decode_entity(self.src, self.i)):
                value.append(decoded[0])
                self.i = decoded[1]
            else:
                value.append(self._at(self.i))
                self.i += 1
        if not self._at(self.i):
            raise parse_error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        self.i += 1
        return "".join(value)

    def _end_tag(self) -> None:
        begin = self.i
        if not self.stack:
            raise parse_error(f"Unexpected end tag at byte offset {self._byte(begin)}")
        self.i += 2
        start = self.i
        while self._in_word(self.i, ">"):
            self.i += 1
        name = self.src[start : self.i].lower()
        while self._at(self.i).isspace():
            self.i += 1
        if self._at(self.i) != ">":
            raise parse_error(f"Unclosed end tag at byte offset {self._byte(begin)}")
        self.i += 1
        expected = self.stack[-1].tag
        if name and name != expected:
            raise parse_error(
                f'Unmatched end tag at byte offset {self._byte(begin)}, expected "</{expected}>", '
                f'found "</{name}>"'
            )
        self._close(self.stack.pop())

    def _close(self, opened: _Open) -> None:
        length = self.u16 - opened.offset
        if length <= 0:
            return
        entity: dict[str, Any] = {
            "type": TAG_TYPES[opened.tag],
            "offset": opened.offset,
            "length": length,
        }
        attrs = opened.attrs
        if opened.tag == "a":
            inner = "".join(self.out)[opened.start :]
            if not link_entity(attrs.get("href") or inner, inner, entity):
                return
        elif opened.tag == "code":
            cls = attrs.get("class", "")
            if cls.startswith("language-") and self.stack and self.stack[-1].tag == "pre":
                entity["language"] = cls.removeprefix("language-")
        elif opened.tag == "pre":
            self._merge_inner_code(entity)
        elif opened.tag == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        elif opened.tag == "tg-emoji":
            entity["custom_emoji_id"] = attrs["emoji-id"]
        elif opened.tag == "tg-time":
            entity["unix_time"] = int(attrs["unix"])
            if attrs.get("format"):
                entity["date_time_format"] = attrs["format"]
        self.entities.append(entity)

    def _merge_inner_code(self, pre: dict[str, Any]) -> None:
        """``<pre><code class="language-x">…</code></pre>`` is one pre entity with a language."""
        last = self.entities[-1] if self.entities else None
        if (
            last is not None
            and last["type"] == "code"
            and (last["offset"], last["length"]) == (pre["offset"], pre["length"])
        ):
            self.entities.pop()
            if last.get("language"):
                pre["language"] = last["language"]
