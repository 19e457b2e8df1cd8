"""Text treatment for dumps: PII masking and a cheap language guess."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# 13–19 digits, optionally grouped by spaces or dashes (cards); checked with Luhn below.
_CARD = re.compile(r"(?<![\d+])(?:\d[ -]?){12,18}\d(?!\d)")
# International or local phone numbers: 7–15 digits with the usual separators.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w])"
)
_TELEGRAM_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)  # `\d` matches every script's decimal digits; int() reads them all
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    # Without a country code, at least 9 digits: keeps dates like 2026-11-23 readable.
    digits = sum(ch.isdigit() for ch in match.group())
    least = 7 if match.group().startswith("+") else 9
    return "[PHONE]" if least <= digits <= 15 else match.group()


def scrub_pii(text: str) -> str:
    """Mask e-mail addresses, card-like numbers (Luhn-valid), phone numbers and @handles."""
    if not any(ch.isdigit() or ch == "@" for ch in text):
        return text
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(_card, text)
    text = _PHONE.sub(_phone, text)
    return _TELEGRAM_HANDLE.sub("[USER]", text)


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
