"""Whether text shows anything: a message of only spaces and zero-width characters does not."""

from __future__ import annotations

import unicodedata

# Control, format (zero-width joiners, BOM, word joiner…), surrogate, private-use, and every
# kind of space or line/paragraph separator.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
# Letters and symbols that render as blanks (Hangul fillers, Braille blank, Khmer inherent
# vowels): the usual way to send an "empty" message.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")


def is_blank(text: str) -> bool:
    """True if `text` would show nothing: empty, or only invisible characters."""
    return all(
        unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _BLANK_CHARACTERS
        for ch in text
    )
