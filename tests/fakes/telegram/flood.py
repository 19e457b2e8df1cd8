"""Telegram-like flood control for the fake: per-chat budgets of messages, edits and drafts.

Telegram does not publish exact limits; these follow its FAQ for bots and what bots observe:

- groups: ``group_per_minute`` messages and edits per chat in any 60 s (a rolling window);
- private chats (``private=True``): a token bucket per chat for messages and edits (1 a second
  sustained, bursts of 3) and another one for ``sendMessageDraft`` frames (4 a second, burst 4);
- optionally ``global_per_second``: all messages and edits of the bot, in every chat (the
  "about 30 messages a second" of bulk notifications; burst: one second's worth).

Over a limit the call fails with 429 ``Too Many Requests: retry after N`` (N: whole seconds
until the call would pass, at least 1) and is not counted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal

from .errors import ApiError

Kind = Literal["message", "draft"]  # sends and edits of messages, or draft frames
PRIVATE_RATE, PRIVATE_BURST = 1.0, 3
DRAFT_RATE, DRAFT_BURST = 4.0, 4
GROUP_PER_MINUTE = 20


class TokenBucket:
    """`burst` tokens, refilled at `rate` a second; a call takes one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait(self, now: float) -> float:
        """Seconds until a token is free (0: one is now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


class FloodControl:
    """Checks a call against the budgets of its chat (`check`), counts it once it succeeded
    (`count`). Handlers are synchronous, so nothing slips in between the two."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        group_per_minute: int | None = None,
        private: bool = False,
        global_per_second: float | None = None,
    ) -> None:
        self.clock, self.group_per_minute, self.private = clock, group_per_minute, private
        self._group_sends: dict[int, deque[float]] = {}
        self._buckets: dict[tuple[int, Kind], TokenBucket] = {}
        self._global = (TokenBucket(global_per_second, global_per_second, clock())
                        if global_per_second else None)

    def _bucket(self, chat_id: int, kind: Kind, now: float) -> TokenBucket | None:
        if not self.private or chat_id <= 0:
            return None
        bucket = self._buckets.get((chat_id, kind))
        if bucket is None:
            rate, burst = (PRIVATE_RATE, PRIVATE_BURST) if kind == "message" else (
                DRAFT_RATE, DRAFT_BURST)
            bucket = self._buckets[(chat_id, kind)] = TokenBucket(rate, burst, now)
        return bucket

    def _group_wait(self, chat_id: int, now: float) -> float:
        if self.group_per_minute is None or chat_id >= 0:
            return 0.0
        window = self._group_sends.setdefault(chat_id, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        return window[0] + 60 - now if len(window) >= self.group_per_minute else 0.0

    def check(self, chat_id: int, kind: Kind = "message") -> None:
        """Raise the 429 Telegram would send if this call went over a budget now."""
        now = self.clock()
        waits = [self._group_wait(chat_id, now) if kind == "message" else 0.0]
        bucket = self._bucket(chat_id, kind, now)
        if bucket is not None:
            waits.append(bucket.wait(now))
        if self._global is not None and kind == "message":
            waits.append(self._global.wait(now))
        wait = max(waits)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}",
                           retry_after=seconds)

    def count(self, chat_id: int, kind: Kind = "message") -> None:
        """A call that passed `check` and succeeded uses up its share of the budgets."""
        now = self.clock()
        if kind == "message" and self.group_per_minute is not None and chat_id < 0:
            self._group_sends.setdefault(chat_id, deque()).append(now)
        bucket = self._bucket(chat_id, kind, now)
        if bucket is not None:
            bucket.take(now)
        if self._global is not None and kind == "message":
            self._global.take(now)
