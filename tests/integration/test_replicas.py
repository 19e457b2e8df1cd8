"""ReplicaSetBackend against real fake vLLM servers on loopback: failover, stickiness, breaker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from inference.catalogue import ModelSpec, Timeouts
from inference.errors import BackendError, ContextTooLong, ModelUnavailable, StreamBroken
from inference.protocol import ChatMessage, Finished, TextDelta
from inference.replicas import ReplicaSetBackend, RoutingSettings
from inference.routing import rendezvous_order
from tests.fakes.openai_api import FakeModelServer
from tests.harness_wait import eventually

pytestmark = pytest.mark.timeout(20)

MODEL = "fake-model"
KEY = "sk-replicas"
PROMPT = [ChatMessage("user", "one two three four five six")]
REPLY = f"[{MODEL}] one two three four five six"
# No background checks (tests call refresh()), quick retries.
SETTINGS = RoutingSettings(health_interval=3600, backoff_base=0.01, backoff_cap=0.05)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeModelServer]]:
    fakes = [FakeModelServer([MODEL], api_key=KEY) for _ in range(3)]
    for fake in fakes:
        await fake.start()
    yield fakes
    for fake in fakes:
        await fake.stop()


def make_spec(servers: list[FakeModelServer], first_token: float = 0.5) -> ModelSpec:
    return ModelSpec(
        id="m", title="M", backend="vllm", model=MODEL, base_url=servers[0].base_url,
        replicas=[s.base_url for s in servers[1:]],
        timeouts=Timeouts(connect=1, first_token=first_token, total=10),
    )


@contextlib.asynccontextmanager
async def routed(
    servers: list[FakeModelServer], settings: RoutingSettings = SETTINGS, *,
    first_token: float = 0.5, clock: FakeClock | None = None,
) -> AsyncIterator[ReplicaSetBackend]:
    spec = make_spec(servers, first_token)
    backend = ReplicaSetBackend(spec, KEY, settings=settings, clock=clock or time.monotonic)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


async def collect(backend: ReplicaSetBackend, key: str | None = "chat-1") -> tuple[str, Finished]:
    texts, finished = [], None
    async for event in backend.stream(PROMPT, {}, key=key):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            finished = event
    assert finished is not None
    return "".join(texts), finished


def sticky(servers: list[FakeModelServer], key: str = "chat-1") -> FakeModelServer:
    first = rendezvous_order([s.base_url for s in servers], key)[0]
    return next(s for s in servers if s.base_url == first)


def chats(servers: list[FakeModelServer]) -> list[int]:
    return [len(s.chat_requests()) for s in servers]


def state_of(backend: ReplicaSetBackend, server: FakeModelServer) -> str:
    return next(r.state for r in backend.status() if r.url == server.base_url)


async def test_same_key_stays_on_its_replica(servers: list[FakeModelServer]) -> None:
    async with routed(servers) as backend:
        assert [r.state for r in backend.status()] == ["ready"] * 3
        used = set()
        for key in [f"chat-{i}" for i in range(6)]:
            target = sticky(servers, key)
            before = chats(servers)
            for _ in range(3):
                assert (await collect(backend, key))[0] == REPLY
            after = chats(servers)
            assert [a - b for a, b in zip(after, before, strict=True)] == [
                3 if s is target else 0 for s in servers
            ]
            used.add(target.base_url)
        assert len(used) > 1


async def test_refused_connection_fails_over_and_replica_comes_back(
    servers: list[FakeModelServer],
) -> None:
    target = sticky(servers)
    async with routed(servers) as backend:
        await target.stop()
        text, _ = await collect(backend)
        assert text == REPLY and sum(chats(servers)) == 1 and not target.chat_requests()
        assert state_of(backend, target) == "down"
        await collect(backend)  # goes straight to the next replica while down
        await target.start(port=urlparse(target.base_url).port or 0)
        await backend.refresh()
        assert state_of(backend, target) == "ready"
        await collect(backend)
        assert len(target.chat_requests()) == 1  # the key is back on its replica


async def test_a_replica_that_no_longer_serves_the_model_fails_over(
    servers: list[FakeModelServer],
) -> None:
    """vLLM restarted there with another model: its 404 is the replica's, not the question's."""
    target = sticky(servers)
    async with routed(servers) as backend:
        del target.models[MODEL]
        target.models["another-model"] = 4096
        text, _ = await collect(backend)
        assert text == REPLY and len(target.chat_requests()) == 1 and sum(chats(servers)) == 2
        assert state_of(backend, target) == "down"
        await collect(backend)  # not asked again until a health check finds the model listed
        assert len(target.chat_requests()) == 1
        await backend.refresh()
        assert state_of(backend, target) == "down"
        target.models[MODEL] = 4096
        await backend.refresh()
        assert state_of(backend, target) == "ready"


async def test_503_cools_the_replica_down_without_tripping_the_breaker(
    servers: list[FakeModelServer],
) -> None:
    target = sticky(servers)
    target.fail_next(503, message="queue full", headers={"Retry-After": "30"})
    async with routed(servers) as backend:
        assert (await collect(backend))[0] == REPLY
        assert state_of(backend, target) == "cooling"
        replica = next(r for r in backend.replicas if r.url == target.base_url)
        assert replica.breaker.failures == 0 and 29 < replica.cooling_left() <= 30
        await collect(backend)
        assert len(target.chat_requests()) == 1  # not asked again while cooling down


async def test_retry_after_is_honoured_when_no_other_replica(
    servers: list[FakeModelServer],
) -> None:
    only = servers[:1]
    only[0].fail_next(429, message="slow down", headers={"Retry-After": "0.4"})
    async with routed(only) as backend:
        assert (await collect(backend))[0] == REPLY
        first, second = [r.time for r in only[0].requests if r.path.endswith("/completions")]
        assert second - first >= 0.4
        only[0].fail_next(429, headers={"Retry-After": "60"})  # too long to wait for
        started = time.monotonic()
        with pytest.raises(ModelUnavailable, match="no healthy replica") as info:
            await collect(backend)
        assert time.monotonic() - started < 2
        assert info.value.retry_after is not None and info.value.retry_after > 50


async def test_replica_dying_before_the_first_token(servers: list[FakeModelServer]) -> None:
    target = sticky(servers)
    target.first_token_delay = 5.0
    async with routed(servers, first_token=10) as backend:
        started = time.monotonic()
        task = asyncio.create_task(collect(backend))
        await eventually(target.chat_requests)
        await target.stop()
        assert (await task)[0] == REPLY
        assert time.monotonic() - started < 4
        assert sum(chats(servers)) == 2


async def test_replica_dying_mid_stream_reaches_the_caller(
    servers: list[FakeModelServer],
) -> None:
    target = sticky(servers)
    target.tokens_per_chunk = 1
    target.fail_mid_stream_next(after_chunks=2, mode="disconnect")
    async with routed(servers) as backend:
        texts: list[str] = []
        with pytest.raises(ModelUnavailable) as info:
            async for event in backend.stream(PROMPT, {}, key="chat-1"):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
        assert isinstance(info.value, StreamBroken)
        assert "".join(texts) == f"[{MODEL}] one"  # the caller keeps what arrived
        assert chats(servers) == [1 if s is target else 0 for s in servers]  # no retry


async def test_hang_past_first_token_timeout_fails_over(servers: list[FakeModelServer]) -> None:
    target = sticky(servers)
    target.hang_next(10)
    async with routed(servers) as backend:
        started = time.monotonic()
        assert (await collect(backend))[0] == REPLY
        assert time.monotonic() - started < 5  # 0.5 s first-token timeout, then another replica
        replica = next(r for r in backend.replicas if r.url == target.base_url)
        assert replica.breaker.failures == 1 and state_of(backend, target) == "ready"
        await eventually(lambda: target.cancelled_requests == 1)  # the hung request was dropped


async def test_all_replicas_down(servers: list[FakeModelServer]) -> None:
    async with routed(servers) as backend:
        for server in servers:
            await server.stop()
        with pytest.raises(ModelUnavailable, match="no healthy replica"):
            await collect(backend)
        assert {r.state for r in backend.status()} == {"down"}
        with pytest.raises(ModelUnavailable, match="no healthy replica"):
            await collect(backend)


async def test_unhealthy_or_not_serving_replicas_get_nothing(
    servers: list[FakeModelServer],
) -> None:
    for server in servers:
        server.healthy = False  # /health answers 503
    async with routed(servers) as backend:
        assert {r.state for r in backend.status()} == {"warming"}  # never ready yet
        with pytest.raises(ModelUnavailable, match="no healthy replica"):
            await collect(backend)
        assert sum(chats(servers)) == 0
        servers[0].healthy = True
        servers[1].healthy = True
        servers[1].models = {"other-model": 4096}  # up, but not serving our model
        await backend.refresh()
        assert [r.state for r in backend.status()] == ["ready", "warming", "warming"]
        await collect(backend)
        assert chats(servers) == [1, 0, 0]
        servers[0].healthy = False
        await backend.refresh()
        assert backend.status()[0].state == "down"


async def test_breaker_opens_then_closes_after_the_open_period(
    servers: list[FakeModelServer],
) -> None:
    clock = FakeClock()
    settings = RoutingSettings(health_interval=3600, backoff_base=0.01, backoff_cap=0.05,
                               breaker_threshold=2, breaker_open_seconds=30)
    target = sticky(servers)
    target.fail_next(500, times=2)
    async with routed(servers, settings, clock=clock) as backend:
        for _ in range(2):
            assert (await collect(backend))[0] == REPLY  # retried elsewhere
        assert state_of(backend, target) == "circuit_open"
        await collect(backend)
        assert len(target.chat_requests()) == 2  # open: not even tried
        clock.now += 31  # half-open: the next request is the trial
        await collect(backend)
        assert len(target.chat_requests()) == 3
        assert state_of(backend, target) == "ready"


async def test_queue_on_the_sticky_replica_spills_over(servers: list[FakeModelServer]) -> None:
    target = sticky(servers)
    target.metrics = {"vllm:num_requests_waiting": 3, "vllm:kv_cache_usage_perc": 0.9}
    async with routed(servers) as backend:
        status = next(r for r in backend.status() if r.url == target.base_url)
        assert (status.waiting, status.running, status.kv_cache_usage) == (3, 0, 0.9)
        await collect(backend)
        assert not target.chat_requests()
        target.metrics = {}
        await backend.refresh()
        await collect(backend)
        assert len(target.chat_requests()) == 1


async def test_in_flight_limit_spills_to_least_outstanding(
    servers: list[FakeModelServer],
) -> None:
    target = sticky(servers)
    target.chunk_delay = 0.05
    settings = RoutingSettings(health_interval=3600, max_in_flight=1)
    async with routed(servers, settings) as backend:
        held = backend.stream(PROMPT, {}, key="chat-1")
        assert isinstance(await anext(held), TextDelta)  # one answer streaming on the target
        assert [r.in_flight for r in backend.status()].count(1) == 1
        await collect(backend)
        assert len(target.chat_requests()) == 1 and sum(chats(servers)) == 2
        await held.aclose()  # type: ignore[attr-defined]
        assert [r.in_flight for r in backend.status()] == [0, 0, 0]
        await collect(backend)
        assert len(target.chat_requests()) == 2


async def test_bad_request_is_not_retried(servers: list[FakeModelServer]) -> None:
    for server in servers:
        server.models = {MODEL: 8}  # shorter than the prompt
    async with routed(servers) as backend:
        with pytest.raises(ContextTooLong):
            await collect(backend, key=None)
        assert sum(chats(servers)) == 1


async def test_ttft_and_tokens_per_second_come_from_usage(
    servers: list[FakeModelServer],
) -> None:
    only = servers[:1]
    server = only[0]
    server.tokens_per_chunk = 3  # several tokens per chunk, as with speculative decoding
    server.chunk_delay = 0.03
    server.first_token_delay = 0.1
    server.set_reply(MODEL, " ".join(f"w{i}" for i in range(30)))
    async with routed(only) as backend:
        assert backend.status()[0].median_ttft is None
        first = last = None
        async for event in backend.stream(PROMPT, {}, key="k"):
            now = time.monotonic()
            if isinstance(event, TextDelta) and first is None:
                first = now
            if isinstance(event, Finished):
                last = now
                assert event.usage.completion_tokens == 30
        assert first is not None and last is not None
        status = backend.status()[0]
        assert status.median_ttft is not None and status.median_ttft >= 0.1
        observed = 30 / (last - first)  # 10 chunks of 3 tokens; counting chunks gives a third
        assert status.tokens_per_s == pytest.approx(observed, rel=0.25)


async def test_speculative_acceptance_in_status(servers: list[FakeModelServer]) -> None:
    target = servers[0]
    target.metrics = {"vllm:spec_decode_num_drafts_total": 100,
                      "vllm:spec_decode_num_draft_tokens_total": 400,
                      "vllm:spec_decode_num_accepted_tokens_total": 200}
    async with routed(servers) as backend:
        assert backend.status()[0].acceptance_rate is None  # one scrape: no rate yet
        target.metrics = {"vllm:spec_decode_num_drafts_total": 200,
                          "vllm:spec_decode_num_draft_tokens_total": 800,
                          "vllm:spec_decode_num_accepted_tokens_total": 500}
        await backend.refresh()
        status = backend.status()
        assert status[0].acceptance_rate == pytest.approx(0.75)
        assert status[0].mean_acceptance_length == pytest.approx(4.0)
        assert status[1].acceptance_rate is None and status[1].mean_acceptance_length is None


async def test_unstarted_backend_starts_on_first_use(servers: list[FakeModelServer]) -> None:
    backend = ReplicaSetBackend(make_spec(servers), KEY, settings=SETTINGS)
    try:
        assert {r.state for r in backend.status()} == {"warming"}
        assert (await collect(backend))[0] == REPLY
        assert {r.state for r in backend.status()} == {"ready"}
    finally:
        await backend.aclose()
    with pytest.raises(BackendError):
        await collect(backend)


async def test_a_replica_back_between_health_checks_is_used_at_once(
    servers: list[FakeModelServer],
) -> None:
    """All replicas looked down at the last check: a request looks again instead of failing
    for up to a health interval after the servers came back (seen with real vLLM restarts)."""
    settings = RoutingSettings(health_interval=3600, backoff_base=0.01, backoff_cap=0.05)
    for server in servers:
        server.healthy = False
    async with routed(servers, settings) as backend:
        assert {r.state for r in backend.status()} == {"warming"}
        servers[2].healthy = True  # back, but the next scheduled check is an hour away
        assert (await collect(backend))[0] == REPLY
        assert chats(servers) == [0, 0, 1]
        for server in servers:
            server.healthy = False
        await backend.refresh()
        with pytest.raises(ModelUnavailable, match="no healthy replica"):
            await collect(backend)  # and when nothing is back, it still fails fast
