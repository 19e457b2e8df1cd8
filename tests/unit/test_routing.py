"""Pure routing pieces: rendezvous hashing, replica choice, breaker, backoff, vLLM metrics."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from inference.breaker import CircuitBreaker
from inference.routing import ReplicaView, RoundRobin, backoff, choose, rendezvous_order
from inference.vllm_metrics import EngineStats, SpecDecodeTracker, parse_metrics

IDS = ["http://a:8000/v1", "http://b:8000/v1", "http://c:8000/v1"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- rendezvous hashing ---------------------------------------------------------------------


def test_rendezvous_is_stable_and_a_permutation() -> None:
    order = rendezvous_order(IDS, "chat-42")
    assert sorted(order) == sorted(IDS)
    assert rendezvous_order(list(reversed(IDS)), "chat-42") == order  # input order is irrelevant
    # Pinned values: blake2b is the same in every process (Python's hash() is salted per process).
    assert order == [IDS[1], IDS[0], IDS[2]]
    assert rendezvous_order(IDS, "chat-7") == [IDS[2], IDS[1], IDS[0]]


def test_rendezvous_spreads_keys_evenly() -> None:
    firsts = Counter(rendezvous_order(IDS, f"chat-{i}")[0] for i in range(3000))
    assert set(firsts) == set(IDS)
    assert all(800 < n < 1200 for n in firsts.values()), firsts


def test_removing_a_replica_moves_only_its_keys() -> None:
    keys = [f"chat-{i}" for i in range(1000)]
    before = {k: rendezvous_order(IDS, k)[0] for k in keys}
    after = {k: rendezvous_order(IDS[:2], k)[0] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == IDS[2] for k in moved)
    # ...and each moved key goes to its second choice.
    assert all(after[k] == rendezvous_order(IDS, k)[1] for k in moved)


# --- choose ---------------------------------------------------------------------------------


def test_sticky_replica_first_then_least_outstanding() -> None:
    sticky = rendezvous_order(IDS, "k")[0]
    others = [i for i in IDS if i != sticky]
    replicas = [
        ReplicaView(id=i, in_flight=5 if i == sticky else (3 if i == others[0] else 1))
        for i in IDS
    ]
    order = [r.id for r in choose(replicas, "k", max_in_flight=8)]
    assert order == [sticky, others[1], others[0]]


@pytest.mark.parametrize("load", [{"waiting": 2}, {"in_flight": 8}])
def test_overloaded_sticky_replica_spills_to_least_outstanding(load: dict) -> None:
    sticky = rendezvous_order(IDS, "k")[0]
    replicas = [ReplicaView(id=i, **(load if i == sticky else {"in_flight": 1})) for i in IDS]
    order = [r.id for r in choose(replicas, "k", max_in_flight=8)]
    assert order[0] != sticky and order[-1] == sticky


def test_unhealthy_replicas_are_left_out() -> None:
    sticky, second, third = rendezvous_order(IDS, "k")
    for bad in ({"ready": False}, {"breaker_allows": False}, {"cooling": True}):
        replicas = [ReplicaView(id=i, **(bad if i == sticky else {})) for i in IDS]
        order = [r.id for r in choose(replicas, "k", max_in_flight=8)]
        assert order == [second, third]  # the key's next rendezvous choice takes over
    down = [ReplicaView(id=i, ready=False) for i in IDS]
    assert choose(down, "k", max_in_flight=8) == []
    assert choose([], None, max_in_flight=8) == []


def test_without_key_least_outstanding_queued_last() -> None:
    replicas = [ReplicaView(id="x", in_flight=2), ReplicaView(id="y", in_flight=0),
                ReplicaView(id="z", in_flight=0, waiting=1), ReplicaView(id="w", in_flight=2)]
    assert [r.id for r in choose(replicas, None, max_in_flight=8)] == ["y", "x", "w", "z"]


def test_round_robin_rotates_over_healthy() -> None:
    rr = RoundRobin()
    replicas = [ReplicaView(id="x"), ReplicaView(id="y", ready=False), ReplicaView(id="z")]
    firsts = [rr.choose(replicas)[0].id for _ in range(4)]
    assert firsts == ["x", "z", "x", "z"]
    assert rr.choose([ReplicaView(id="y", ready=False)]) == []


# --- breaker --------------------------------------------------------------------------------


def test_breaker_state_machine() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=30, clock=clock)
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # consecutive failures only
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow() and not breaker.available()
    clock.advance(29.9)
    assert breaker.state == "open"
    clock.advance(0.2)
    assert breaker.state == "half_open" and breaker.available()
    assert breaker.allow()  # the one trial
    assert not breaker.allow() and not breaker.available()
    breaker.record_failure()  # trial failed: open again for a full period
    assert breaker.state == "open"
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breaker_trial_released_or_expired() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow() and not breaker.allow()
    breaker.release()  # e.g. the user cancelled: no verdict, the slot is free again
    assert breaker.allow() and not breaker.allow()
    clock.advance(10)  # a trial that never reports back stops blocking
    assert breaker.allow()


# --- backoff --------------------------------------------------------------------------------


def test_backoff_full_jitter_bounds() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        limit = min(2.0, 0.2 * 2**attempt)
        delays = [backoff(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= limit for d in delays)
        assert max(delays) > limit * 0.8  # jitter uses the whole range
    assert all(backoff(0, rng=rng, retry_after=1.5) >= 1.5 for _ in range(50))
    assert backoff(10, base=1, cap=3, rng=rng) <= 3


# --- vLLM metrics ---------------------------------------------------------------------------

VLLM_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 2.0
vllm:num_requests_running{engine="1",model_name="qwen"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwen"} 0.0
vllm:num_requests_waiting{engine="1",model_name="qwen"} 4.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="qwen"} 0.5
# TYPE vllm:spec_decode_num_drafts counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="qwen"} 100.0
vllm:spec_decode_num_drafts_created{engine="0",model_name="qwen"} 1.7e+09
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="qwen"} 400.0
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="qwen"} 236.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="a} b",position="0"} 80
http_requests_total{handler="/v1/chat/completions",method="POST"} 12 1700000000000
vllm:broken_line{engine="0"
process_start_time_seconds NaN
"""


def test_parse_metrics_sums_label_sets() -> None:
    stats = parse_metrics(VLLM_TEXT)
    assert stats == EngineStats(
        running=3, waiting=4, kv_cache_usage=0.5, spec_drafts=100.0, spec_draft_tokens=400.0,
        spec_accepted_tokens=236.0,
    )
    assert stats.speculative


def test_parse_metrics_absent_and_old_names() -> None:
    assert parse_metrics("") == EngineStats()
    assert not parse_metrics("").speculative
    old = parse_metrics('vllm:gpu_cache_usage_perc{model_name="m"} 0.75\n')
    assert old.kv_cache_usage == 0.75 and old.running is None and old.spec_drafts is None
    both = parse_metrics("vllm:gpu_cache_usage_perc 0.75\nvllm:kv_cache_usage_perc 0.1\n")
    assert both.kv_cache_usage == 0.1


def spec_stats(drafts: float, draft_tokens: float, accepted: float) -> EngineStats:
    return EngineStats(spec_drafts=drafts, spec_draft_tokens=draft_tokens,
                       spec_accepted_tokens=accepted)


def test_acceptance_arithmetic_over_a_window() -> None:
    tracker = SpecDecodeTracker(window=300)
    tracker.observe(spec_stats(100, 400, 200), now=0)
    assert tracker.acceptance_rate is None and tracker.mean_acceptance_length is None
    tracker.observe(spec_stats(200, 800, 436), now=60)  # +100 drafts, +400 proposed, +236 ok
    assert tracker.acceptance_rate == pytest.approx(236 / 400)  # 0.59: α=0.8, k=4 in vLLM terms
    assert tracker.mean_acceptance_length == pytest.approx(1 + 236 / 100)  # 3.36
    tracker.observe(spec_stats(300, 1200, 536), now=370)  # baseline moves to t=60
    assert tracker.acceptance_rate == pytest.approx(100 / 400)
    assert tracker.mean_acceptance_length == pytest.approx(2.0)
    tracker.observe(EngineStats(), now=330)  # a scrape without spec metrics changes nothing
    assert tracker.acceptance_rate == pytest.approx(0.25)


def test_counter_reset_starts_a_new_baseline() -> None:
    tracker = SpecDecodeTracker(window=300)
    tracker.observe(spec_stats(1000, 4000, 3000), now=0)
    tracker.observe(spec_stats(1100, 4400, 3300), now=10)
    tracker.observe(spec_stats(5, 20, 10), now=20)  # server restarted
    assert tracker.acceptance_rate is None  # one sample since the restart, never negative
    tracker.observe(spec_stats(15, 60, 40), now=30)
    assert tracker.acceptance_rate == pytest.approx(30 / 40)
    assert tracker.mean_acceptance_length == pytest.approx(1 + 30 / 10)
    tracker.observe(spec_stats(15, 60, 40), now=40)  # idle: no new drafts
    assert tracker.acceptance_rate == pytest.approx(0.75)


def test_weighted_rendezvous_gives_faster_replicas_more_keys() -> None:
    from collections import Counter

    from inference.routing import rendezvous_order

    keys = [f"chat{i}" for i in range(3000)]
    even = Counter(rendezvous_order(["a", "b"], k)[0] for k in keys)
    assert 0.45 < even["a"] / len(keys) < 0.55
    weighted = Counter(rendezvous_order(["a", "b"], k, {"a": 3.0, "b": 1.0})[0] for k in keys)
    assert 0.70 < weighted["a"] / len(keys) < 0.80  # 3:1 weights → about 75% of keys
    # Equal weights keep the unweighted order (no conversation moves when speeds are equal).
    assert all(rendezvous_order(["a", "b", "c"], k) ==
               rendezvous_order(["a", "b", "c"], k, {"a": 2.0, "b": 2.0, "c": 2.0})
               for k in keys[:200])


def test_a_much_slower_sticky_replica_is_not_kept() -> None:
    from inference.routing import ReplicaView, choose, rendezvous_order

    key = next(k for k in (f"c{i}" for i in range(100))
               if rendezvous_order(["fast", "slow"], k)[0] == "slow")
    same = [ReplicaView("fast", speed=1.0), ReplicaView("slow", speed=0.9)]
    assert choose(same, key, max_in_flight=8)[0].id == "slow"  # similar speed: sticky wins
    slower = [ReplicaView("fast", speed=1.0), ReplicaView("slow", speed=0.2)]
    assert choose(slower, key, max_in_flight=8)[0].id == "fast"  # 5× slower: not kept
    busy = [ReplicaView("fast", speed=1.0, in_flight=8), ReplicaView("slow", speed=0.2)]
    assert choose(busy, key, max_in_flight=8)[0].id == "slow"  # unless the fast one is full
