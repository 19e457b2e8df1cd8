"""The fuzz checks themselves can fail: what counts as a stack trace in a reply."""

from __future__ import annotations

import traceback

import pytest

from tests.fuzz.harness import TRACE

pytestmark = pytest.mark.fuzz


def _a_trace() -> str:
    try:
        {}["missing"]
    except KeyError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("text", [_a_trace(), "KeyError: 'missing'",
                                  "DBAPIError(invalid input for query argument $1)",
                                  'File "/srv/bot/app.py", line 12, in run'])
def test_a_trace_or_exception_is_recognised(text: str) -> None:
    assert TRACE.search(text)


@pytest.mark.parametrize("text", ["⚠️ Something went wrong on my side. Please try again.",
                                  "⚠️ no model 'x' (models: alpha, beta)",
                                  "Errors happen; exceptions too.", "[alpha-served] hi"])
def test_the_bots_own_lines_are_not(text: str) -> None:
    assert not TRACE.search(text)
