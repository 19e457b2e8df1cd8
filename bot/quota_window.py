"""Quota windows and how long until they reset.

Windows are calendar periods in UTC: the clock hour, the day from midnight, the ISO week from
Monday. Everyone's window resets at the same moment, which is easy to say ("resets in 3 h 12
min") and to check; a sliding window would reset answer by answer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from bot.texts import t

PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def window_start(now: datetime, per: str) -> datetime:
    """The start of the window `per` (hour, day, week) that `now` falls in, in UTC."""
    now = now.astimezone(UTC)
    if per == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "day":
        return day
    if per == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"unknown quota period {per!r}")


def window_end(now: datetime, per: str) -> datetime:
    """When the window `now` falls in resets."""
    return window_start(now, per) + PERIODS[per]


def duration(seconds: float, lang: str) -> str:
    """`seconds` as its two largest units, rounded up ("3 h 12 min", "45 s", "2 d 5 h")."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return t("dur_seconds", lang, n=seconds)
    minutes = math.ceil(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    units = [("dur_days", days), ("dur_hours", hours), ("dur_minutes", minutes)]
    first = next(i for i, (_, n) in enumerate(units) if n)
    return " ".join(t(key, lang, n=n) for key, n in units[first:first + 2] if n)
