"""The one cleaning of text before it is shown or stored (bot/cleaning.py)."""

from __future__ import annotations

import pytest

from bot.cleaning import StreamCleaner, clean_text


@pytest.mark.parametrize(("raw", "clean"), [
    ("plain text, кириллица, 😀", "plain text, кириллица, 😀"),
    ("nul\x00 byte", "nul byte"),
    ("bell\x07, escape\x1b[0m, vt\x0b ff\x0c us\x1f", "bell, escape[0m, vt ff us"),
    ("keep\ttabs\nand newlines", "keep\ttabs\nand newlines"),
    ("windows\r\nline\rends", "windows\nline\nends"),
    ("a \ud83d\ude00 pair", "a 😀 pair"),  # two halves in a row are one character
    ("lone high \ud800 here", "lone high \ufffd here"),
    ("lone low \udc00 here", "lone low \ufffd here"),
    ("reversed \ude00\ud83d", "reversed \ufffd\ufffd"),
    ("ends with \ud83d", "ends with \ufffd"),
    ("", ""),
])
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    assert clean_text(clean) == clean  # idempotent
    clean.encode("utf-8")  # what Postgres and Telegram need: encodable, no NUL
    assert "\x00" not in clean


def feed_all(pieces: list[str]) -> tuple[list[str], str]:
    cleaner = StreamCleaner()
    shown = [cleaner.feed(piece) for piece in pieces]
    return shown, "".join(shown) + cleaner.flush()


def test_stream_pairs_a_surrogate_split_across_pieces() -> None:
    shown, text = feed_all(["smile ", "\ud83d", "\ude00", " done"])
    assert text == "smile 😀 done"
    assert "\ufffd" not in "".join(shown)  # the half is held back, never shown as U+FFFD
    assert shown == ["smile ", "", "😀", " done"]


def test_stream_holds_back_a_carriage_return() -> None:
    assert feed_all(["one\r", "\ntwo\r", "three\r"])[1] == "one\ntwo\nthree\n"


def test_stream_flushes_a_dangling_half_as_replacement() -> None:
    shown, text = feed_all(["cut \ud83d"])
    assert shown == ["cut "] and text == "cut \ufffd"


def test_stream_result_equals_cleaning_the_whole_text() -> None:
    raw = "a\x00b\r\nc \ud83d\ude00 d \ud800 e\x07"
    for size in range(1, 5):
        pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
        assert feed_all(pieces)[1] == clean_text(raw)
