"""One model served by several replicas: health checks, breakers, retries before the first token.

Each replica is an `OpenAICompatBackend`; the choice of replica is `routing.choose` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from inference.backends.openai_compat import OpenAICompatBackend, connection_failed
from inference.breaker import CircuitBreaker
from inference.catalogue import ModelSpec
from inference.errors import (
    BackendError,
    BadRequest,
    ModelNotServed,
    ModelUnavailable,
    RateLimited,
)
from inference.protocol import ChatMessage, Finished, ReasoningDelta, StreamEvent, TextDelta
from inference.redaction import redact_url
from inference.routing import ReplicaView, answer_speed, backoff, choose
from inference.tokens import TokenCounter, VllmCounter, counter_for_model
from inference.vllm_metrics import (
    EngineStats,
    SpecDecodeTracker,
    parse_metrics,
    parse_ray_metrics,
)

log = logging.getLogger(__name__)

ReplicaState = Literal["ready", "warming", "down", "circuit_open", "cooling"]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    health_interval: float = 5.0  # seconds between health checks (and /metrics scrapes)
    health_timeout: float = 3.0
    max_attempts: int = 3  # replicas tried per request, before the first token only
    max_in_flight: int = 8  # our requests on the sticky replica before it counts as overloaded
    breaker_threshold: int = 5
    breaker_open_seconds: float = 30.0
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    overload_cooldown: float = 5.0  # after a 429/503 without Retry-After
    max_retry_wait: float = 5.0  # longest cooldown worth waiting for when no replica is free
    stats_window: float = 300.0  # TTFT, tokens/s and acceptance are over this many seconds


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    url: str
    state: ReplicaState
    in_flight: int
    running: int | None
    waiting: int | None
    kv_cache_usage: float | None
    median_ttft: float | None  # seconds
    tokens_per_s: float | None  # median, completion tokens per second after the first token
    acceptance_rate: float | None
    mean_acceptance_length: float | None


class RollingSamples:
    """Values observed in the last `window` seconds."""

    def __init__(self, window: float, clock: Clock) -> None:
        self.window, self._clock = window, clock
        self._items: deque[tuple[float, float]] = deque()

    def _prune(self, now: float) -> None:
        while self._items and self._items[0][0] < now - self.window:
            self._items.popleft()

    def add(self, value: float) -> None:
        now = self._clock()
        self._items.append((now, value))
        self._prune(now)

    def median(self) -> float | None:
        self._prune(self._clock())
        return statistics.median(v for _, v in self._items) if self._items else None


class AnswerSpeed:
    """Time to first token and tokens/s of one streamed answer, added to rolling samples.

    Output tokens come from the final usage, never from counting chunks: with speculative
    decoding one chunk can carry several tokens."""

    def __init__(self, ttft: RollingSamples, tokens_per_s: RollingSamples, clock: Clock) -> None:
        self.ttft, self.tokens_per_s, self._clock = ttft, tokens_per_s, clock
        self.started, self.first = clock(), None

    def observe(self, event: StreamEvent) -> None:
        now = self._clock()
        if isinstance(event, TextDelta | ReasoningDelta) and self.first is None:  # first token
            self.first = now
            self.ttft.add(now - self.started)
        elif isinstance(event, Finished):
            tokens = event.usage.completion_tokens
            if self.first is not None and tokens and now > self.first:
                self.tokens_per_s.add(tokens / (now - self.first))


class Replica:
    """One replica's live state: health, breaker, cooldown, in-flight count and samples."""

    def __init__(
        self, url: str, backend: OpenAICompatBackend, settings: RoutingSettings, clock: Clock
    ) -> None:
        self.url = url
        self.root = url.rstrip("/").removesuffix("/v1")
        self.backend = backend
        self.breaker = CircuitBreaker(
            settings.breaker_threshold, settings.breaker_open_seconds, clock
        )
        self.health: Literal["warming", "ready", "down"] = "warming"
        self.in_flight = 0
        self.stats = EngineStats()
        self.spec_decode = SpecDecodeTracker(settings.stats_window)
        self.ttft = RollingSamples(settings.stats_window, clock)
        self.tokens_per_s = RollingSamples(settings.stats_window, clock)
        self._cooling_until = float("-inf")
        self._clock = clock

    def cool_down(self, seconds: float) -> None:
        """Route nothing here for `seconds` (overload: 429/503), without touching the breaker."""
        self._cooling_until = max(self._cooling_until, self._clock() + seconds)

    def cooling_left(self) -> float:
        return max(0.0, self._cooling_until - self._clock())

    def view(self) -> ReplicaView:
        return ReplicaView(
            id=self.url, ready=self.health == "ready", breaker_allows=self.breaker.available(),
            cooling=self.cooling_left() > 0, in_flight=self.in_flight, waiting=self.stats.waiting,
            speed=answer_speed(self.ttft.median(), self.tokens_per_s.median()),
        )

    def state(self) -> ReplicaState:
        if self.health != "ready":
            return self.health
        if self.breaker.state != "closed":
            return "circuit_open"
        return "cooling" if self.cooling_left() > 0 else "ready"

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(
            url=self.url, state=self.state(), in_flight=self.in_flight,
            running=self.stats.running, waiting=self.stats.waiting,
            kv_cache_usage=self.stats.kv_cache_usage, median_ttft=self.ttft.median(),
            tokens_per_s=self.tokens_per_s.median(),
            acceptance_rate=self.spec_decode.acceptance_rate,
            mean_acceptance_length=self.spec_decode.mean_acceptance_length,
        )


class ReplicaSetBackend:
    """A `ChatBackend` over `spec.urls`: sticky, load-aware choice, retries before any text."""

    def __init__(
        self, spec: ModelSpec, api_key: str | None, *,
        settings: RoutingSettings = RoutingSettings(), clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.replicas = [
            Replica(url, OpenAICompatBackend(spec, api_key, base_url=url), settings, clock)
            for url in spec.urls
        ]
        self._by_url = {r.url: r for r in self.replicas}
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._recheck_lock = asyncio.Lock()
        # The server's own limit (vLLM lists max_model_len); None until a check has seen it.
        self.max_model_len: int | None = None
        self.counter: TokenCounter = (
            VllmCounter(spec.model, self._post_ready) if spec.backend == "vllm"
            else counter_for_model(spec.model))
        self._rechecked_at = float("-inf")
        self._closed = False

    # --- lifecycle and health -------------------------------------------------------------

    async def start(self) -> None:
        """Check every replica once, then keep checking in the background. Idempotent;
        `stream` calls it, so a backend nobody started still routes."""
        async with self._start_lock:
            if self._closed:
                raise ModelUnavailable("backend closed")
            if self._session is not None:
                return
            timeout = aiohttp.ClientTimeout(total=self.settings.health_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
            await self.refresh()
            self._loop_task = asyncio.create_task(self._health_loop())

    async def aclose(self) -> None:
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._session is not None:
            await self._session.close()
        for replica in self.replicas:
            await replica.backend.aclose()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            await self.refresh()

    async def refresh(self) -> None:
        """Check every replica now: `/models` lists the model and `/health` says 200."""
        await asyncio.gather(*(self._check(r) for r in self.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            ready = await self._probe(replica)
        except Exception as exc:  # any failure to answer properly means not ready
            log.debug("health check of %s failed: %r", redact_url(replica.url), exc)
            ready = False
        if ready:
            replica.health = "ready"
        elif replica.health == "ready":
            replica.health = "down"  # "warming" stays so until the first good check

    async def _probe(self, replica: Replica) -> bool:
        session = self._session
        assert session is not None
        # No redirects: the key goes to this replica's host and nowhere else.
        async with session.get(f"{replica.url.rstrip('/')}/models", headers=self._headers,
                               allow_redirects=False) as r:
            listing = await r.json(content_type=None) if r.status == 200 else {}
        entry = next((m for m in listing.get("data") or [] if m.get("id") == self.spec.model),
                     None)
        listed = entry is not None
        if listed and isinstance(entry.get("max_model_len"), int):
            self.max_model_len = entry["max_model_len"]
        async with session.get(f"{replica.root}/health", allow_redirects=False) as r:
            # External APIs have no /health, nor has a Ray Serve LLM app (its proxy answers
            # /v1 only): for them only a 404 is as good as a 200.
            alive = r.status == 200 or (r.status == 404 and (
                self.spec.backend == "openai" or self.spec.ray_serve is not None))
        if self.spec.backend == "vllm":
            replica.stats = EngineStats()  # no stale queue figures if the scrape fails
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):  # not a health signal
                replica.stats = await self._scrape(session, replica)
            replica.spec_decode.observe(replica.stats, self._clock())
        return listed and alive

    async def _scrape(self, session: aiohttp.ClientSession, replica: Replica) -> EngineStats:
        """The engine's figures: its server's /metrics, or for a Ray Serve app Ray's metrics
        endpoint (filtered by the served name; nothing without one)."""
        ray = self.spec.ray_serve
        if ray is not None and ray.metrics_url is None:
            return EngineStats()
        url = ray.metrics_url if ray is not None else f"{replica.root}/metrics"
        async with session.get(url, allow_redirects=False) as r:
            text = await r.text() if r.status == 200 else ""
        return parse_ray_metrics(text, self.spec.model) if ray is not None else parse_metrics(text)

    async def _recheck(self, min_interval: float = 1.0) -> None:
        """A health check now, shared by concurrent callers, at most once per `min_interval`."""
        async with self._recheck_lock:
            if self._clock() - self._rechecked_at < min_interval:
                return
            await self.refresh()
            self._rechecked_at = self._clock()

    async def _post_ready(self, path: str, body: dict) -> dict | None:
        """POST `body` to `path` on a ready replica's server root; None if none answers."""
        await self.start()
        session = self._session
        assert session is not None
        for replica in sorted(self.replicas, key=lambda r: r.health != "ready"):
            try:
                async with session.post(f"{replica.root}{path}", json=body,
                                        headers=self._headers, allow_redirects=False) as r:
                    if r.status == 200:
                        return await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.debug("%s on %s failed: %r", path, redact_url(replica.url), exc)
        return None

    def status(self) -> list[ReplicaStatus]:
        return [r.status() for r in self.replicas]

    # --- streaming ------------------------------------------------------------------------

    async def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        await self.start()
        if not self._usable(key):
            # Every replica looked down at the last health check (up to `health_interval`
            # ago): a server that came back since would be refused for no reason. Look now.
            await self._recheck()
        tried: set[str] = set()
        last: BackendError | None = None
        for attempt in range(self.settings.max_attempts):
            if attempt:
                delay = self._retry_delay(attempt - 1, key)
                if delay is None:
                    break
                await asyncio.sleep(delay)
            replica = self._pick(key, tried)
            if replica is None:
                break
            tried.add(replica.url)
            sent_text = False
            try:
                async with contextlib.aclosing(
                    self._attempt(replica, messages, params, key)
                ) as events:
                    async for event in events:
                        # Reasoning was shown too: another replica would start over.
                        sent_text = sent_text or isinstance(event, TextDelta | ReasoningDelta)
                        yield event
                return
            except BadRequest:
                raise
            except BackendError as exc:
                if sent_text:
                    raise  # the caller keeps the text and says the answer was cut
                log.info("replica %s failed before the first token: %s",
                         redact_url(replica.url), exc)
                last = exc
        detail = "no healthy replica" + (f" (last error: {last})" if last else "")
        kind = type(last) if isinstance(last, ModelUnavailable) else ModelUnavailable
        raise kind(detail, retry_after=self._soonest_cooldown()) from last

    def _views(self, key: str | None) -> list[ReplicaView]:
        views = [r.view() for r in self.replicas]
        if key is None:
            self._rng.shuffle(views)  # spread ties between idle replicas
        return views

    def _pick(self, key: str | None, tried: set[str]) -> Replica | None:
        order = choose(self._views(key), key, max_in_flight=self.settings.max_in_flight)
        for view in sorted(order, key=lambda v: v.id in tried):  # untried first, order kept
            replica = self._by_url[view.id]
            if replica.breaker.allow():
                return replica
        return None

    def _usable(self, key: str | None) -> bool:
        """Whether some replica could take a request now (without taking a breaker's trial)."""
        order = choose(self._views(key), key, max_in_flight=self.settings.max_in_flight)
        return any(self._by_url[view.id].breaker.available() for view in order)

    def _soonest_cooldown(self) -> float | None:
        waits = [r.cooling_left() for r in self.replicas
                 if r.health == "ready" and r.breaker.available() and r.cooling_left() > 0]
        return min(waits) if waits else None

    def _retry_delay(self, attempt: int, key: str | None) -> float | None:
        """Jittered backoff; when every replica is cooling down, wait for the first to be free
        (Retry-After is honoured), unless that is longer than `max_retry_wait`."""
        s = self.settings
        if choose(self._views(key), key, max_in_flight=s.max_in_flight):
            return backoff(attempt, base=s.backoff_base, cap=s.backoff_cap, rng=self._rng)
        wait = self._soonest_cooldown()
        if wait is None or wait > s.max_retry_wait:
            return None
        return backoff(attempt, base=s.backoff_base, cap=s.backoff_cap, rng=self._rng,
                       retry_after=wait + 0.01)

    async def _attempt(
        self, replica: Replica, messages: list[ChatMessage], params: dict[str, float | int],
        key: str | None,
    ) -> AsyncIterator[StreamEvent]:
        """One try on one replica, with its bookkeeping (in flight, samples, breaker)."""
        replica.in_flight += 1
        speed = AnswerSpeed(replica.ttft, replica.tokens_per_s, self._clock)
        judged = False
        try:
            async with contextlib.aclosing(
                replica.backend.stream(messages, params, key=key)  # type: ignore[type-var]
            ) as events:
                async for event in events:
                    speed.observe(event)
                    yield event
            replica.breaker.record_success()
            judged = True
        except BackendError as exc:
            judged = self._judge(replica, exc)
            raise
        finally:
            replica.in_flight -= 1
            if not judged:
                replica.breaker.release()

    def _judge(self, replica: Replica, exc: BackendError) -> bool:
        """Account a failed try; True when the breaker got a verdict."""
        cause = exc.__cause__  # the openai exception the typed error was made from
        if isinstance(exc, RateLimited) or getattr(cause, "status_code", None) == 503:
            replica.cool_down(exc.retry_after or self.settings.overload_cooldown)
            return False
        if isinstance(exc, BadRequest):
            replica.breaker.record_success()  # it answered: the replica itself is fine
            return True
        replica.breaker.record_failure()
        if isinstance(exc, ModelNotServed) or connection_failed(cause):
            # Refused, dropped, or no longer serving the model: until the next good check.
            replica.health = "down"
        return True
