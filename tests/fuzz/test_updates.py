"""Random and malformed updates: the bot never fails on them and never shows a trace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.updates import message_update, mutate

pytestmark = [pytest.mark.fuzz,
              pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")]


@fuzz_settings(400)
@given(data=st.data())
async def test_any_well_formed_update_is_handled_without_error(fuzz, data):
    """Messages of every shape, in every kind of chat: each is answered, ignored or refused
    in one line; no handler fails. (A new person or chat may be stored: that is allowed.)"""
    since = fuzz.begin()
    await fuzz.feed(message_update(data, fuzz.telegram))
    await fuzz.idle()
    fuzz.assert_clean(since)


@fuzz_settings(400)
@given(data=st.data())
async def test_malformed_updates_are_rejected_before_any_handler_or_handled(fuzz, data):
    """A malformed update fails aiogram's parse (as it would in polling or a webhook), so no
    handler runs: no Bot API call, no database write. One that still parses is handled
    without error."""
    raw = fuzz.stamp(mutate(data, message_update(data, fuzz.telegram)))
    since = fuzz.begin()
    before = await fuzz.checksums()
    if not await fuzz.feed_raw(raw):
        assert await fuzz.checksums() == before
        assert fuzz.telegram.requests[since:] == []
    await fuzz.idle()
    fuzz.assert_clean(since)
