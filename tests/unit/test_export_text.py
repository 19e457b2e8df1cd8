"""PII masking in the preference dumps."""

from __future__ import annotations

import pytest

from storage.exports.text import scrub_pii


@pytest.mark.parametrize(("text", "expected"), [
    ("write to john.doe+bot@mail.example.org now", "write to [EMAIL] now"),
    ("call +7 912 345-67-89 today", "call [PHONE] today"),
    ("call 8 (912) 345-67-89", "call [PHONE]"),
    ("US: 555-123-4567.", "US: [PHONE]."),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("card 5500-0000-0000-0004", "card [CARD]"),
    # Any script's decimal digits are digits: Arabic-Indic 4111 1111 1111 1111.
    ("card \u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 "
     "\u0661\u0661\u0661\u0661", "card [CARD]"),
    ("ping @durov_fan please", "ping [USER] please"),
])
def test_pii_is_masked(text, expected):
    assert scrub_pii(text) == expected


@pytest.mark.parametrize("text", [
    "The meeting is on 2026-11-23 at 10:30.",
    "x = 3.14159; y = 42",
    "order #12345 costs 1 999 rubles",
    "python3.11 -m pip install torch==2.13.0",
    "4111 1111 1111 1112 is not a valid card",  # fails the Luhn check
    "Привет, как дела?",
])
def test_ordinary_text_is_left_alone(text):
    assert scrub_pii(text) == text

