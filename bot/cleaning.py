"""Text made safe for Telegram and Postgres, cleaned once where it enters the bot.

Model servers may send what neither accepts: U+0000 (Postgres rejects it in text), other C0
control characters (Telegram turns them into spaces, so what is shown would differ from what is
stored), and UTF-16 surrogate halves, which JSON can escape (``\\ud83d``) but UTF-8 cannot
encode: a half alone fails to send and to store, and a pair cut across two stream chunks must
become its real character again. Users' text from the console can carry the same.
"""

from __future__ import annotations

import re

# C0 controls except \t and \n (\r is turned into \n first).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_HIGH = ("\ud800", "\udbff")


def clean_text(text: str) -> str:
    """Pair surrogate halves into characters (a lone half becomes U+FFFD), turn \\r\\n and \\r
    into \\n, and drop the other control characters except \\t and \\n. Idempotent."""
    if _SURROGATES.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


class StreamCleaner:
    """`clean_text` for a text arriving in pieces: a piece ending in a high surrogate or \\r is
    held back until the next one, which may complete it."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        last = text[-1:]
        held = 1 if last == "\r" or _HIGH[0] <= last <= _HIGH[1] else 0
        self._pending = text[len(text) - held:]
        return clean_text(text[: len(text) - held])

    def flush(self) -> str:
        """What is held back, cleaned (the stream ended)."""
        text, self._pending = self._pending, ""
        return clean_text(text)
