"""`is_blank`: text that shows nothing (spaces and zero-width characters) is blank."""

from __future__ import annotations

import pytest

from bot.visible import is_blank


@pytest.mark.parametrize("text", [
    "", " ", "\n\t ", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", "\u00a0\u2003\u3000",
    "\u3164", "\u2800\u2800", "\u2028\u2029", "\u00ad", "\u202e\u202d",
])
def test_blank(text):
    assert is_blank(text)


@pytest.mark.parametrize("text", [
    "a", " x ", "\u200bhi\u200b", "😀", "\u0301", "42", "Привет", "\u2063.", "-",
])
def test_not_blank(text):
    assert not is_blank(text)
