"""Text treatment for dumps: a cheap language guess (PII masking is in pii.py)."""

from __future__ import annotations

import re

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
# Non-ASCII characters other than Cyrillic letters and common typography.
_NOT_CYRILLIC = re.compile(r"[^\x00-\x7F\u0400-\u04FF\u00A0-\u00BF\u2010-\u206F]")
_LATIN = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u4E00-\u9FFF]")
_KANA = re.compile(r"[\u3040-\u30FF]")
_HANGUL = re.compile(r"[\uAC00-\uD7AF]")
_ARABIC = re.compile(r"[\u0600-\u06FF]")


def guess_language(text: str) -> str:
    """The script-dominant language of a prompt ("English", "Russian", …) or "unknown".

    A script count, not a language detector: cheap enough for millions of rows, and right for
    the two languages the bot speaks; anything in Latin script is reported as English.
    """
    sample = text[:400]
    if sample.isascii():
        return "English" if _LATIN.search(sample) else "unknown"
    window = sample[:160]
    if not _NOT_CYRILLIC.search(window):
        # Only Cyrillic beyond ASCII: each such letter is one extra UTF-8 byte.
        cyrillic = len(window.encode()) - len(window)
        if cyrillic >= len(_LATIN.findall(window)):
            return "Russian"
        return "English"
    counts = {
        "Russian": len(_CYRILLIC.findall(sample)),
        "English": len(_LATIN.findall(sample)),
        "Japanese": len(_KANA.findall(sample)),
        "Chinese": len(_CJK.findall(sample)),
        "Korean": len(_HANGUL.findall(sample)),
        "Arabic": len(_ARABIC.findall(sample)),
    }
    if counts["Japanese"]:
        return "Japanese"
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else "unknown"
