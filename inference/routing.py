"""Pure replica-choice strategies: no I/O, so they are tested with plain values.

`choose` keeps a conversation on one replica (rendezvous hashing on its key, for the prefix
cache) unless that replica is overloaded, and otherwise prefers the least outstanding requests.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What a strategy may know about one replica at the moment of choosing."""

    id: str
    ready: bool = True  # passed its last health check
    breaker_allows: bool = True  # circuit closed, or half-open with the trial slot free
    cooling: bool = False  # answered 429/503 recently
    in_flight: int = 0  # our own requests on it now
    waiting: int | None = None  # vLLM's queue (vllm:num_requests_waiting), if scraped
    speed: float | None = None  # measured answers per second (see `answer_speed`), if known

    @property
    def healthy(self) -> bool:
        return self.ready and self.breaker_allows and not self.cooling


TYPICAL_ANSWER_TOKENS = 100
# A conversation is not kept on a replica this many times slower than the fastest healthy one:
# the prefix cache it would reuse is worth less than the latency it costs.
SLOW_FACTOR = 3.0


def answer_speed(median_ttft: float | None, tokens_per_s: float | None) -> float | None:
    """How many typical answers a replica delivers per second, from its recent medians."""
    if median_ttft is None or not tokens_per_s:
        return None
    return 1.0 / (median_ttft + TYPICAL_ANSWER_TOKENS / tokens_per_s)


def _unit(key: str, replica_id: str) -> float:
    """A stable pseudo-random number in (0, 1) for (key, replica)."""
    digest = hashlib.blake2b(f"{key}\x00{replica_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 2)


def rendezvous_order(replica_ids: list[str], key: str,
                     weights: dict[str, float] | None = None) -> list[str]:
    """Replicas by highest random weight for `key` (weighted rendezvous hashing: a replica
    with twice the weight is first for twice the keys). Stable across processes and restarts;
    removing a replica only moves the keys that were on it."""
    weights = weights or {}
    return sorted(
        replica_ids,
        key=lambda rid: (-weights.get(rid, 1.0) / -math.log(_unit(key, rid)), rid),
    )


def speed_weights(replicas: list[ReplicaView]) -> dict[str, float]:
    """Rendezvous weights from measured speed relative to the average (replicas not yet
    measured count as average)."""
    known = [r.speed for r in replicas if r.speed]
    if not known:
        return {}
    average = sum(known) / len(known)
    # Rounded to powers of two, so measurement noise between similar replicas does not move
    # conversations; only real differences in speed do.
    return {r.id: 2.0 ** round(math.log2((r.speed or average) / average)) for r in replicas}


def is_overloaded(replica: ReplicaView, max_in_flight: int) -> bool:
    return (replica.waiting or 0) > 0 or replica.in_flight >= max_in_flight


def choose(
    replicas: list[ReplicaView], key: str | None, *, max_in_flight: int
) -> list[ReplicaView]:
    """The healthy replicas in the order to try them.

    With a key, its rendezvous replica (weighted by measured speed, so slow replicas keep
    fewer conversations) comes first unless overloaded (vLLM queue non-empty or
    `max_in_flight` of ours on it) or `SLOW_FACTOR` times slower than the fastest; the rest
    follow by least expected wait (outstanding requests per unit of speed; without speed data,
    least outstanding), overloaded ones last, ties broken by rendezvous rank.
    """
    healthy = [r for r in replicas if r.healthy]
    if key is None:
        rank = {r.id: i for i, r in enumerate(healthy)}
    else:
        order = rendezvous_order([r.id for r in healthy], key, speed_weights(healthy))
        rank = {rid: i for i, rid in enumerate(order)}
    weights = speed_weights(healthy)

    def expected_wait(r: ReplicaView) -> float:
        # Outstanding requests (ours, and vLLM's queue) per unit of measured speed.
        return (r.in_flight + (r.waiting or 0) + 1) / weights.get(r.id, 1.0)

    by_load = sorted(healthy, key=lambda r: (
        is_overloaded(r, max_in_flight), expected_wait(r), rank[r.id]
    ))
    if key is None or not healthy:
        return by_load
    sticky = min(healthy, key=lambda r: rank[r.id])
    fastest = max(weights.values(), default=1.0)
    too_slow = weights.get(sticky.id, 1.0) * SLOW_FACTOR < fastest
    if is_overloaded(sticky, max_in_flight) or too_slow:
        return by_load
    return [sticky, *(r for r in by_load if r is not sticky)]


class RoundRobin:
    """Baseline for benchmarks: every healthy replica in turn, ignoring load and keys."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: list[ReplicaView]) -> list[ReplicaView]:
        healthy = [r for r in replicas if r.healthy]
        if not healthy:
            return []
        start = self._next % len(healthy)
        self._next += 1
        return healthy[start:] + healthy[:start]


def backoff(
    attempt: int, *, base: float = 0.2, cap: float = 2.0, rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): full jitter, uniform in
    [0, min(cap, base·2^attempt)], but never less than a server's Retry-After."""
    delay = rng.uniform(0.0, min(cap, base * 2**attempt))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
