"""Fuzz fixtures and hypothesis profiles.

`ci` (the default) runs a fixed, derandomized set of examples so a failure reproduces;
`HYPOTHESIS_PROFILE=long` explores many more, randomly. Either prints the failing example.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, Verbosity, settings

from tests.fuzz.harness import FuzzBot, fuzz_bot

_COMMON = {
    "deadline": None,  # a feed awaits Postgres, Redis and the fakes: timings vary
    # Each test's bot (fixtures) serves all its examples; it is reset between them.
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large],
    "print_blob": True,
    "database": None,  # no example database written into the worktree
    "verbosity": Verbosity.normal,
}
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=5000, **_COMMON)


def fuzz_settings(examples: int | None = None) -> settings:
    """The chosen profile (HYPOTHESIS_PROFILE, `ci` unless set), optionally with a test's
    own number of examples under `ci`."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    profile = settings.get_profile(name)
    if examples is not None and name == "ci":
        return settings(profile, max_examples=examples)
    return profile


@pytest.fixture
async def fuzz(tmp_path, telegram, models, database_url, redis_prefix
               ) -> AsyncIterator[FuzzBot]:
    async with fuzz_bot(tmp_path, telegram, models, database_url, redis_prefix) as bot:
        yield bot
        bot.assert_clean()
