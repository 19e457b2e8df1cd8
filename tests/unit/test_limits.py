"""Rate-limit buckets in memory, quota windows, durations and the catalogue's quota schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.quota_window import duration, window_end, window_start
from inference.catalogue import CatalogueError, parse_catalogue
from storage.token_bucket import MemoryBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_allows_a_burst_then_refills_at_its_rate():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    for _ in range(3):
        assert (await buckets.take("u", 3, 0.5)).allowed
    refused = await buckets.take("u", 3, 0.5)
    assert not refused.allowed and refused.wait == pytest.approx(2.0)
    clock.now += 1.0  # half a token: still refused, a second to go
    assert (await buckets.take("u", 3, 0.5)).wait == pytest.approx(1.0)
    clock.now += 1.0
    assert (await buckets.take("u", 3, 0.5)).allowed
    assert not (await buckets.take("u", 3, 0.5)).allowed
    assert (await buckets.take("other", 3, 0.5)).allowed  # per key


async def test_memory_bucket_peek_takes_nothing_and_never_overfills():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    assert (await buckets.peek("u", 2, 1.0)).tokens == 2
    await buckets.take("u", 2, 1.0)
    state = await buckets.peek("u", 2, 1.0)
    assert state.tokens == pytest.approx(1.0) and state.wait == pytest.approx(1.0)
    assert (await buckets.peek("u", 2, 1.0)).tokens == pytest.approx(1.0)
    clock.now += 100
    assert (await buckets.peek("u", 2, 1.0)).tokens == 2


@pytest.mark.parametrize(("now", "per", "start", "end"), [
    (datetime(2026, 12, 4, 21, 47, 5, 9, tzinfo=UTC), "hour",
     datetime(2026, 12, 4, 21, tzinfo=UTC), datetime(2026, 12, 4, 22, tzinfo=UTC)),
    (datetime(2026, 12, 4, 21, 47, tzinfo=UTC), "day",
     datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)),
    (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "day",
     datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    # 2026-12-04 is a Friday: the week began on Monday the 30th of November.
    (datetime(2026, 12, 4, 12, tzinfo=UTC), "week",
     datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
    (datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "week",
     datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
])
def test_windows_are_calendar_periods_in_utc(now, per, start, end):
    assert window_start(now, per) == start
    assert window_end(now, per) == end


def test_windows_of_other_time_zones_are_taken_in_utc():
    from datetime import timedelta, timezone

    moscow = timezone(timedelta(hours=3))
    now = datetime(2026, 12, 5, 1, 30, tzinfo=moscow)  # still the 4th in UTC
    assert window_start(now, "day") == datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "en", "ru"), [
    (0.2, "1 s", "1 с"),
    (45, "45 s", "45 с"),
    (60, "1 min", "1 мин"),
    (61, "2 min", "2 мин"),  # rounded up: never "0 min" while a wait remains
    (3 * 3600 + 11 * 60 + 30, "3 h 12 min", "3 ч 12 мин"),
    (3600, "1 h", "1 ч"),
    (2 * 86400 + 5 * 3600 + 7, "2 d 5 h", "2 д 5 ч"),
])
def test_durations_read_well_in_both_languages(seconds, en, ru):
    assert duration(seconds, "en") == en
    assert duration(seconds, "ru") == ru


def catalogue(quota, **top):
    return {"default_model": "a", **top, "models": [
        {"id": "a", "title": "A", "base_url": "http://x/v1", "model": "m", "quota": quota}]}


def test_a_quota_for_every_tier_or_per_tier():
    one = parse_catalogue(catalogue({"messages": 50, "per": "day"})).models[0]
    assert one.quota_for("standard").messages == 50 and one.quota_for("premium").per == "day"
    tiered = parse_catalogue(catalogue({"standard": {"messages": 5, "per": "hour"},
                                        "premium": {"messages": 500, "per": "week"}})).models[0]
    assert (tiered.quota_for("standard").messages, tiered.quota_for("premium").per) == (5, "week")
    assert tiered.quota_for(None).messages == 5  # no tier: standard
    only_standard = parse_catalogue(catalogue({"standard": {"messages": 5, "per": "day"}}))
    assert only_standard.models[0].quota_for("premium") is None  # a tier not named: no limit
    assert parse_catalogue(catalogue(None)).models[0].quota_for("standard") is None
    custom = parse_catalogue(catalogue({"gold": {"messages": 1, "per": "day"}},
                                       tiers=["standard", "gold"]))
    assert custom.tiers == ["standard", "gold"]


def test_a_quota_survives_being_stored_and_read_back():
    """Models added from the chat are stored as JSON and validated again."""
    from inference.catalogue import ModelSpec

    spec = parse_catalogue(catalogue({"premium": {"messages": 5, "per": "hour"}})).models[0]
    again = ModelSpec.model_validate(spec.model_dump(mode="json"))
    assert again.quota_for("premium").messages == 5 and again.quota_for("standard") is None


@pytest.mark.parametrize(("quota", "top", "error"), [
    ({"messages": 0, "per": "day"}, {}, "models[0] (id 'a') → quota.messages: Input should be "
                                        "greater than 0"),
    ({"messages": 5, "per": "month"}, {}, "quota.per: Input should be 'hour', 'day' or 'week'"),
    ({"messages": 5}, {}, "quota.per: Field required"),
    ({"messages": 5, "per": "day", "every": 2}, {}, "quota.every: Extra inputs are not "
                                                    "permitted"),
    (5, {}, "quota: expected {messages: N, per: hour|day|week} or a mapping of tiers"),
    ({"Gold Tier": {"messages": 1, "per": "day"}}, {}, "quota: 'Gold Tier' is neither"),
    ({"gold": {"messages": 1, "per": "day"}}, {}, "model 'a': quota tier 'gold' is not one of "
                                                  "tiers ['standard', 'premium']"),
    ({"premium": {"messages": -1, "per": "day"}}, {}, "quota.premium.messages: Input should be "
                                                      "greater than 0"),
    (None, {"tiers": ["premium"]}, "tiers: must include 'standard'"),
    (None, {"tiers": ["standard", "standard"]}, "tiers: a tier is listed twice"),
    (None, {"tiers": ["standard", "VIP!"]}, "tiers.1: String should match pattern"),
])
def test_bad_quotas_and_tiers_are_one_clear_line(quota, top, error):
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(catalogue(quota, **top))
    assert error in str(caught.value)


def test_addmodel_takes_a_quota_for_every_tier():
    from bot.admin_args import UsageError, endpoint_spec, split_args

    spec = endpoint_spec(*split_args("x url=http://h/v1 model=m quota=50/day"))
    assert spec.quota_for("standard").messages == 50 and spec.quota_for("premium").per == "day"
    assert endpoint_spec(*split_args("x url=http://h/v1 model=m")).quota is None
    for bad in ("0/day", "50/month", "50", "a/day", "²/day", "99999999/day"):
        with pytest.raises(UsageError, match="quota= must look like 50/day"):
            endpoint_spec(*split_args(f"x url=http://h/v1 model=m quota={bad}"))


class FakeUsage:
    """Answers counted per model, as `LimitsRepository.answers_since` would."""

    def __init__(self, used: dict[str, int]) -> None:
        self.used = used
        self.asked: list[tuple[list[str], datetime]] = []

    async def answers_since(self, user_id, model_ids, since):
        self.asked.append((sorted(model_ids), since))
        return {m: self.used[m] for m in model_ids if m in self.used}


def limits_for(used: dict[str, int], quotas: dict[str, object], **settings):
    from bot.limits import Limits
    from bot.settings import Settings
    from inference.keys import KeyRing
    from inference.registry import ModelRegistry
    from storage.shared_state import MemoryState

    raw = {"default_model": "a", "models": [
        {"id": m, "title": m.upper(), "base_url": "http://x/v1", "model": m,
         "quota": quotas.get(m)} for m in ("a", "b", "c")]}
    catalogue = parse_catalogue(raw)
    registry = ModelRegistry(catalogue, KeyRing.from_catalogue(catalogue, {}))
    now = datetime(2026, 12, 4, 20, 47, 30, tzinfo=UTC)
    return Limits(Settings(admin_ids=frozenset({1}), **settings), registry,  # type: ignore[arg-type]
                  FakeUsage(used), MemoryBuckets(), MemoryState(), clock=lambda: now)


def user(telegram_id: int = 5, tier: str = "standard"):
    from storage.models import User

    return User(id=telegram_id, telegram_id=telegram_id, tier=tier)


DAILY = {"messages": 2, "per": "day"}


async def test_a_model_over_quota_is_refused_with_the_time_until_midnight_utc():
    limits = limits_for({"a": 2}, {"a": DAILY})
    verdict = await limits.verdict(user(), "a", "en")
    assert verdict.refusal == ("⛔ Limit reached for A: 2 messages per day. "
                               "Resets in 3 h 13 min.")
    assert verdict.exhausted == ("a",)
    assert (await limits.verdict(user(), "b", "en")).refusal is None  # b has no quota
    assert (await limits.verdict(user(1), "a", "en")).refusal is None  # an admin
    fresh = limits_for({"a": 1}, {"a": DAILY})
    assert (await fresh.verdict(user(), "a", "en")).refusal is None


async def test_no_quota_in_the_tier_costs_no_query():
    limits = limits_for({"a": 9}, {"a": {"premium": DAILY}})
    assert (await limits.verdict(user(), "a", "en")).refusal is None
    assert limits.repo.asked == []
    assert (await limits.verdict(user(tier="premium"), "a", "en")).refusal is not None


async def test_a_tier_no_longer_listed_counts_as_standard():
    limits = limits_for({"a": 2}, {"a": {"standard": DAILY}})
    assert (await limits.verdict(user(tier="gold"), "a", "en")).refusal is not None


async def test_arena_goes_on_without_the_models_out_of_quota():
    limits = limits_for({"a": 2}, {"a": DAILY})
    verdict = await limits.verdict(user(), "a", "en", arena=True)
    assert verdict.refusal is None and verdict.exhausted == ("a",)  # b and c can battle
    both = limits_for({"a": 2, "b": 2}, {"a": DAILY, "b": DAILY})
    verdict = await both.verdict(user(), "a", "en", arena=True)
    assert verdict.refusal is not None and set(verdict.exhausted) == {"a", "b"}


async def test_windows_of_different_periods_are_counted_from_their_own_start():
    limits = limits_for({}, {"a": DAILY, "b": {"messages": 5, "per": "hour"}})
    await limits.statuses(user(), limits.registry.enabled())
    assert sorted(limits.repo.asked) == [
        (["a"], datetime(2026, 12, 4, tzinfo=UTC)),
        (["b"], datetime(2026, 12, 4, 20, tzinfo=UTC))]


async def test_the_rate_limit_line_is_said_once_and_presses_have_more_room():
    limits = limits_for({}, {}, rate_limit_burst=2, rate_limit_per_minute=1)
    assert await limits.rate_refusal(5, "en") is None
    assert await limits.rate_refusal(5, "en") is None
    assert await limits.rate_refusal(5, "en") == "⏳ Too many messages at once. Try again in 1 min."
    assert await limits.rate_refusal(5, "en") == ""  # refused, without another line
    assert await limits.rate_refusal(1, "en") is None  # admins: never
    # A button's model call is refused with the line even when it was said already.
    assert (await limits.admit(user(5), "b", "en")).startswith("⏳ Too many messages")
    presses = [await limits.press_refusal(5, "en") for _ in range(7)]
    assert presses[:6] == [None] * 6 and presses[6].startswith("⏳ Too many presses")
    off = limits_for({}, {}, rate_limit_burst=0)
    assert all([await off.rate_refusal(5, "en") is None for _ in range(50)])
