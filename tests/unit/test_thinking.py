"""The `<think>` splitter: the same reasoning and answer however the stream is cut."""

from __future__ import annotations

import itertools

import pytest

from inference.protocol import ReasoningDelta, TextDelta
from inference.thinking import ThinkSplitter


def run(pieces: list[str]) -> tuple[str, str, list[object]]:
    splitter = ThinkSplitter()
    events = [e for p in pieces for e in splitter.feed(p)] + splitter.flush()
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer, events


def cuts(text: str, n: int):
    """Every way to cut `text` into n pieces (empty pieces included)."""
    for points in itertools.combinations_with_replacement(range(len(text) + 1), n - 1):
        bounds = [0, *points, len(text)]
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


CASES = [
    ("<think>\nLet me add.\n</think>\n\nIt is 4.", "Let me add.", "It is 4."),
    ("  <think>a<b</think>c", "a<b", "c"),
    ("<think></think>Answer", "", "Answer"),
    ("<think>still thinking", "still thinking", ""),  # never closed: no answer
    ("<think>x </thi", "x </thi", ""),  # a half closing tag at the end is reasoning
    ("Plain <think>not reasoning</think>", "", "Plain <think>not reasoning</think>"),
    ("<thinking> is a word", "", "<thinking> is a word"),
    ("<th", "", "<th"),
    ("", "", ""),
    ("<think>one</think>two</think>", "one", "two</think>"),
]


@pytest.mark.parametrize(("stream", "reasoning", "answer"), CASES)
def test_every_two_and_three_piece_cut_gives_the_same_split(stream, reasoning, answer):
    for n in (1, 2, 3):
        for pieces in cuts(stream, n):
            got_reasoning, got_answer, _ = run(pieces)
            assert (got_reasoning.strip(), got_answer) == (reasoning, answer), pieces


def test_one_character_at_a_time():
    stream = "<think>\nStep 1.\nStep 2.\n</think>\n\n**Answer**: 42"
    reasoning, answer, _ = run(list(stream))
    assert reasoning.strip() == "Step 1.\nStep 2."
    assert answer == "**Answer**: 42"


def test_reasoning_streams_live_not_only_at_the_close():
    splitter = ThinkSplitter()
    assert splitter.feed("<think>First") == [ReasoningDelta("First")]
    # A possible start of "</think>" is held back until it is known not to be one.
    assert splitter.feed(" idea </th") == [ReasoningDelta(" idea ")]
    assert splitter.feed("en more") == [ReasoningDelta("</then more")]
    assert splitter.feed("</think>Done") == [TextDelta("Done")]
    assert splitter.feed(" now") == [TextDelta(" now")]


def test_a_plain_stream_passes_through_piece_by_piece():
    splitter = ThinkSplitter()
    assert splitter.feed("Hello") == [TextDelta("Hello")]
    assert splitter.feed(" <think>") == [TextDelta(" <think>")]
    assert splitter.flush() == []


def test_leading_whitespace_is_held_until_known():
    splitter = ThinkSplitter()
    assert splitter.feed("\n") == []
    assert splitter.feed("Hi") == [TextDelta("\nHi")]
