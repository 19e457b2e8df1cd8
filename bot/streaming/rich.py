"""Bot API 10.1 rich messages, for answers that message entities cannot show.

An answer *needs* rich rendering (`needs_rich`) when its Markdown, outside code, has:

- a table (a header row of cells, then a `---|---` delimiter row),
- math: display (`$$…$$`, `\\[…\\]`), or inline (`\\(…\\)`, or `$…$` around something that
  reads as LaTeX: a backslash command, `^` or `_`; plain prices like "$5 and $10" do not count),
- a list nested three levels deep, or a quote inside a quote.

Entities show none of these (a table's pipes, raw LaTeX, flattened nesting). Everything else
reads as well with entities, which every client shows: rich messages are the exception.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from aiogram.exceptions import TelegramAPIError

log = logging.getLogger(__name__)

# Rich message limits (Bot API "Rich Message Limits"): 32,768 characters of text. The source
# Markdown is longer than the text it renders, so it bounds it; keep a margin.
RICH_LIMIT = 32_768
RICH_BUDGET = 32_000
# After Telegram refuses a rich message, this process sends entities only for this long.
RICH_COOLDOWN = 600.0

_FENCED = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[ \t]*$|\Z)",
                     re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`+[^`\n]*`+")
_TABLE = re.compile(
    r"^[ \t]*\|?[^|\n]*\|[^\n]*\n"  # a header row with at least one pipe
    r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$"  # | --- | :-: |
    r"|^[ \t]*\|?[^|\n]*\|[^\n]*\n[ \t]*\|[ \t]*:?-+:?[ \t]*\|[ \t]*$",  # one column
    re.MULTILINE,
)
_DISPLAY_MATH = re.compile(r"\$\$(?=\S).+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]*?\S)\$(?![\w$])")
_LATEX_SIGNS = re.compile(r"\\[A-Za-z]+|[\^_]")
_LIST_ITEM = re.compile(r"^( *)(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_NESTED_QUOTE = re.compile(r"^ {0,3}>[ \t]*>", re.MULTILINE)
_ESCAPED = re.compile(r"([\\`*_\[\]$|~=#<>!])")


def _prose(markdown: str) -> str:
    """The Markdown without its code (fenced blocks and inline code spans)."""
    return _INLINE_CODE.sub(" ", _FENCED.sub("\n", markdown))


def _list_depth(text: str) -> int:
    """The deepest list nesting: each item indented past the one it follows opens a level."""
    deepest, indents = 0, []
    for line in text.splitlines():
        match = _LIST_ITEM.match(line)
        if match is None:
            if not line.strip() or line.startswith((" ", "\t")):
                continue  # a blank line or a continuation keeps the list open
            indents = []
            continue
        indent = len(match.group(1))
        while indents and indent < indents[-1] + 2:  # a sibling, or back out of a sublist
            indents.pop()
        indents.append(indent)
        deepest = max(deepest, len(indents))
    return deepest


def needs_rich(markdown: str) -> bool:
    """Whether entities cannot show this answer: a table, math, or deep nesting (see above)."""
    text = _prose(markdown)
    if _TABLE.search(text) or _DISPLAY_MATH.search(text) or _NESTED_QUOTE.search(text):
        return True
    if any(_LATEX_SIGNS.search(m.group(1)) for m in _INLINE_MATH.finditer(text)):
        return True
    return _list_depth(text) >= 3


def rich_markdown(markdown: str, reasoning: str = "", label: str = "",
                  shown: Callable[[str], str] | None = None) -> str:
    """The rich message's Markdown: the answer, after the reasoning as a quote (its label in
    bold, its text escaped: it is not the answer and is not formatted). `shown` shortens the
    reasoning to what the message keeps of it."""
    if not reasoning.strip():
        return markdown
    text = shown(reasoning.strip()) if shown is not None else reasoning.strip()
    lines = [_escape(line) for line in text.splitlines()]
    quote = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return f"> **{_escape(label)}**\n{quote}\n\n{markdown}"


def _escape(text: str) -> str:
    """Markdown punctuation made literal."""
    return _ESCAPED.sub(r"\\\1", text)


def fits(source: str) -> bool:
    return len(source) <= RICH_BUDGET


class RichGate:
    """Whether this process tries rich messages now: on ("auto") unless Telegram refused one
    in the last `cooldown` seconds (an old Bot API server, a client-side rollout, a
    Markdown it would not take: the next answers go the entity way at once)."""

    def __init__(self, enabled: bool, cooldown: float = RICH_COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled, self.cooldown, self._clock = enabled, cooldown, clock
        self._until = 0.0

    def open(self) -> bool:
        return self.enabled and self._clock() >= self._until

    def failed(self, exc: TelegramAPIError, what: str) -> None:
        log.warning("%s refused (%s): entities only for %.0f s", what, exc.message,
                    self.cooldown)
        self._until = self._clock() + self.cooldown
