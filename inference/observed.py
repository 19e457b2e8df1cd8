"""A single API endpoint, observed: in-flight requests, TTFT, tokens/s and its last outcome,
so /models can report on external APIs too (no health polling: they are checked by use)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from inference.backends.openai_compat import OpenAICompatBackend
from inference.errors import BackendError, BadRequest
from inference.protocol import ChatMessage, Finished, StreamEvent
from inference.replicas import AnswerSpeed, ReplicaStatus, RollingSamples

WINDOW = 300.0


class ObservedBackend:
    def __init__(self, backend: OpenAICompatBackend,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self._clock = clock
        self.in_flight = 0
        self.ttft = RollingSamples(WINDOW, clock)
        self.tokens_per_s = RollingSamples(WINDOW, clock)
        self.state = "warming"  # until the first answer; "down" after a failure of the server

    async def stream(
        self, messages: list[ChatMessage], params: dict[str, float | int],
        *, key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        speed = AnswerSpeed(self.ttft, self.tokens_per_s, self._clock)
        self.in_flight += 1
        try:
            async for event in self.backend.stream(messages, params, key=key):
                speed.observe(event)
                if isinstance(event, Finished):
                    self.state = "ready"
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
        return [ReplicaStatus(
            url=self.backend.base_url, state=self.state, in_flight=self.in_flight,  # type: ignore[arg-type]
            running=None, waiting=None, kv_cache_usage=None, median_ttft=self.ttft.median(),
            tokens_per_s=self.tokens_per_s.median(), acceptance_rate=None,
            mean_acceptance_length=None,
        )]

    async def aclose(self) -> None:
        await self.backend.aclose()
