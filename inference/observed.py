"""A single backend, observed: in-flight requests, TTFT, tokens/s and its last outcome, so
/models can report on external APIs and local models too (no health polling: they are
checked by use). For the local engine it also adds up what assisted decoding did."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from inference.errors import BackendError, BadRequest
from inference.protocol import ChatBackend, ChatMessage, DecodingStats, Finished, StreamEvent
from inference.replicas import AnswerSpeed, ReplicaStatus, RollingSamples

WINDOW = 300.0


class ObservedBackend:
    def __init__(self, backend: ChatBackend, label: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.label = label  # the URL, or where a local model was loaded from
        self._clock = clock
        self.decoding = DecodingStats()  # sums over this process's answers
        self.in_flight = 0
        self.ttft = RollingSamples(WINDOW, clock)
        self.tokens_per_s = RollingSamples(WINDOW, clock)
        self.state = "warming"  # until the first answer; "down" after a failure of the server
        # How the wrapped backend counts tokens, and its server's own context limit, if known.
        self.counter = getattr(backend, "counter", None)

    async def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        speed = AnswerSpeed(self.ttft, self.tokens_per_s, self._clock)
        self.in_flight += 1
        try:
            # aclosing: a reader that stops early (the stop button) closes the model stream
            # now, which for the local engine ends generation within one step.
            async with aclosing(self.backend.stream(messages, params, key=key)) as events:
                async for event in events:
                    speed.observe(event)
                    if isinstance(event, Finished):
                        self.state = "ready"
                        if event.decoding is not None:
                            self.decoding.add(event.decoding)
                    yield event
        except BadRequest:
            self.state = "ready"  # the server answered; the request was the problem
            raise
        except BackendError:
            self.state = "down"
            raise
        finally:
            self.in_flight -= 1

    def status(self) -> list[ReplicaStatus]:
        totals = getattr(self.backend, "totals", None)  # the local engine's queue
        running = waiting = None
        if totals is not None:
            load = totals()
            running, waiting = int(bool(load["busy"])), int(load["queue_length"])
        return [ReplicaStatus(
            url=self.label, state=self.state, in_flight=self.in_flight,  # type: ignore[arg-type]
            running=running, waiting=waiting, kv_cache_usage=None,
            median_ttft=self.ttft.median(), tokens_per_s=self.tokens_per_s.median(),
            acceptance_rate=self.decoding.acceptance_rate,
            mean_acceptance_length=self.decoding.mean_acceptance_length,
        )]

    async def aclose(self) -> None:
        await self.backend.aclose()
