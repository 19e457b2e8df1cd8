"""Routing benchmark: ReplicaSetBackend against plain round robin, on three fake vLLM replicas.

Usage:
    python -m benchmarks.routing [--requests 240] [--rate 12] [--users 40] [--seed 1]
                                 [--health-interval 1] [--max-in-flight 4]

Three FakeModelServer replicas on loopback: fast, medium and slow (first-token and per-chunk
delays, and a vLLM-like batch limit `max_num_seqs` beyond which requests queue). The medium one
answers 10% of requests with HTTP 500. The same offered load (seeded Poisson arrivals, each
request from one of `--users` simulated users, whose chat id is the routing key) goes through
(a) round robin with no retries and (b) ReplicaSetBackend, one after the other in this run.
Prints p50/p95 end-to-end latency of the answered requests, the user-visible failure rate and
where the requests went. Goal (issue "Router"): p95 at least 30% lower, no visible failures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import ModelSpec, Timeouts
from inference.errors import BackendError
from inference.protocol import ChatMessage, StreamEvent
from inference.replicas import ReplicaSetBackend, RoutingSettings
from inference.routing import ReplicaView, RoundRobin
from tests.fakes.openai_api import FakeModelServer

MODEL = "bench-model"
PROMPT = [ChatMessage("user", "How do I route requests over replicas?")]
REPLY = " ".join(f"tok{i}" for i in range(24))  # 12 chunks of 2 tokens


@dataclass(frozen=True)
class Profile:
    name: str
    first_token_delay: float
    chunk_delay: float
    max_num_seqs: int
    fail_rate: float = 0.0


PROFILES = [
    Profile("fast", 0.05, 0.010, 8),
    Profile("medium", 0.10, 0.025, 8, fail_rate=0.10),
    Profile("slow", 0.25, 0.060, 4),
]

Streamer = Callable[[str], AsyncIterator[StreamEvent]]


@dataclass
class Result:
    name: str
    latencies: list[float]
    failures: int
    shares: list[int]

    @property
    def total(self) -> int:
        return len(self.latencies) + self.failures

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


class RoundRobinClient:
    """The baseline: one client per replica, taken in turn; no health checks, no retries."""

    def __init__(self, spec: ModelSpec) -> None:
        self._backends = {url: OpenAICompatBackend(spec, None, base_url=url) for url in spec.urls}
        self._views = [ReplicaView(id=url) for url in spec.urls]
        self._rr = RoundRobin()

    def stream(self, key: str) -> AsyncIterator[StreamEvent]:
        url = self._rr.choose(self._views)[0].id
        return self._backends[url].stream(PROMPT, {}, key=key)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()


def schedule(n: int, rate: float, users: int, seed: int) -> list[tuple[float, str]]:
    """(arrival time, user key) for `n` requests: Poisson arrivals at `rate` per second."""
    rng = random.Random(seed)
    arrivals, now = [], 0.0
    for _ in range(n):
        now += rng.expovariate(rate)
        arrivals.append((now, f"chat-{rng.randrange(users)}"))
    return arrivals


async def run_load(name: str, stream: Streamer, plan: list[tuple[float, str]],
                   servers: list[FakeModelServer], seed: int) -> Result:
    for server in servers:
        server.rng = random.Random(seed)  # the same failure draws for each strategy
    before = [len(s.chat_requests()) for s in servers]
    loop = asyncio.get_running_loop()
    origin = loop.time()

    async def one(at: float, key: str) -> float | None:
        await asyncio.sleep(max(0.0, origin + at - loop.time()))
        started = loop.time()
        try:
            async for _ in stream(key):
                pass
        except BackendError:
            return None
        return loop.time() - started

    outcomes = await asyncio.gather(*(one(at, key) for at, key in plan))
    latencies = [o for o in outcomes if o is not None]
    shares = [len(s.chat_requests()) - b for s, b in zip(servers, before, strict=True)]
    return Result(name, latencies, len(outcomes) - len(latencies), shares)


def report(results: list[Result]) -> None:
    names = "/".join(p.name for p in PROFILES)
    print(f"{'strategy':<14}{'answered':>9}{'failed':>8}{'fail %':>8}{'p50 s':>8}{'p95 s':>8}"
          f"   requests sent {names}")
    for r in results:
        print(f"{r.name:<14}{len(r.latencies):>9}{r.failures:>8}{100 * r.failures / r.total:>8.1f}"
              f"{r.p(50):>8.3f}{r.p(95):>8.3f}   {'/'.join(map(str, r.shares))}")
    base, routed = results
    gain = 1 - routed.p(95) / base.p(95)
    print(f"p95 improvement: {100 * gain:.1f}% (goal ≥ 30%); user-visible failures with routing: "
          f"{routed.failures} (goal 0)")


async def main(args: argparse.Namespace) -> None:
    servers = [
        FakeModelServer([MODEL], first_token_delay=p.first_token_delay, chunk_delay=p.chunk_delay,
                        max_num_seqs=p.max_num_seqs)
        for p in PROFILES
    ]
    for server, profile in zip(servers, PROFILES, strict=True):
        server.fail_rate = profile.fail_rate
        server.set_reply(MODEL, REPLY)
        await server.start()
    spec = ModelSpec(
        id="bench", title="Bench", backend="vllm", model=MODEL, base_url=servers[0].base_url,
        replicas=[s.base_url for s in servers[1:]],
        timeouts=Timeouts(connect=2, first_token=30, total=60),
    )
    plan = schedule(args.requests, args.rate, args.users, args.seed)
    print(f"{args.requests} requests, Poisson {args.rate}/s, {args.users} users; replicas: "
          + ", ".join(f"{p.name} (TTFT {p.first_token_delay}s, {p.chunk_delay}s/chunk, "
                      f"{p.max_num_seqs} seqs, {p.fail_rate:.0%} fail)" for p in PROFILES))
    baseline = RoundRobinClient(spec)
    settings = RoutingSettings(health_interval=args.health_interval,
                               max_in_flight=args.max_in_flight)
    router = ReplicaSetBackend(spec, None, settings=settings, rng=random.Random(args.seed))
    try:
        results = [await run_load("round robin", baseline.stream, plan, servers, args.seed)]
        await router.start()

        def routed(key: str) -> AsyncIterator[StreamEvent]:
            return router.stream(PROMPT, {}, key=key)

        results.append(await run_load("replica set", routed, plan, servers, args.seed))
    finally:
        await baseline.aclose()
        await router.aclose()
        for server in servers:
            await server.stop()
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--rate", type=float, default=12.0, help="offered requests per second")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--health-interval", type=float, default=1.0)
    parser.add_argument("--max-in-flight", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
