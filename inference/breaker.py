"""A per-replica circuit breaker: closed → open after N failures → half-open trial → closed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures; opens for `open_seconds`, then lets one trial request through.

    Overload answers (429/503) are not failures: callers cool the replica down instead.
    """

    def __init__(
        self, failure_threshold: int = 5, open_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None  # when the half-open trial request started

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.open_seconds:
            return "open"
        return "half_open"

    @property
    def failures(self) -> int:
        return self._failures

    def available(self) -> bool:
        """Whether `allow()` would say yes (without taking the half-open trial)."""
        state = self.state
        if state == "half_open":
            # A trial that never reported back (cancelled) stops blocking after open_seconds.
            return self._trial_at is None or self._clock() - self._trial_at >= self.open_seconds
        return state == "closed"

    def allow(self) -> bool:
        """May a request go out now? In half-open state this takes the single trial slot."""
        if not self.available():
            return False
        if self.state == "half_open":
            self._trial_at = self._clock()
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = self._trial_at = None

    def record_failure(self) -> None:
        state = self.state
        if state == "half_open":
            self._open()
        elif state == "closed":
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def release(self) -> None:
        """The request ended without a verdict (cancelled, overloaded): free the trial slot."""
        self._trial_at = None

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_at = None
