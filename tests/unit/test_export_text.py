"""The language guess used by the preference dumps (PII masking: test_pii.py)."""

from __future__ import annotations

import pytest

from storage.exports.text import guess_language


@pytest.mark.parametrize(("text", "language"), [
    ("How do I cook borscht?", "English"),
    ("Как сварить борщ?", "Russian"),
    ("Как сделать `git rebase`?", "Russian"),
    ("你好，世界", "Chinese"),
    ("こんにちは世界", "Japanese"),
    ("12345 + 678", "unknown"),
])
def test_language_guess(text, language):
    assert guess_language(text) == language
