"""Text treatment for dumps: PII masking (language tags: storage/exports/language.py)."""

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

