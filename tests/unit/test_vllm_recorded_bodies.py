"""chatmux's own parsing of what real vLLM sent (the recordings, replayed byte for byte):
typed errors from its error bodies, text and usage from its stream, load and acceptance from
its /metrics, readiness from /health and /v1/models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import ModelSpec
from inference.errors import (
    BackendError,
    BadRequest,
    ContextTooLong,
    ModelUnavailable,
    StreamBroken,
)
from inference.probe import served_models
from inference.protocol import ChatMessage, Finished, TextDelta
from inference.replicas import ReplicaSetBackend, RoutingSettings
from inference.vllm_metrics import (
    ACCEPTED,
    DRAFT_TOKENS,
    DRAFTS,
    RUNNING,
    WAITING,
    SpecDecodeTracker,
    parse_metrics,
)
from tests.fakes.replay import ReplayServer
from tests.vllm_real.recording import load

RECORDINGS = Path(__file__).resolve().parents[1] / "fakes" / "recordings" / "vllm-0.32.0"
EXCHANGES = load(RECORDINGS)
PROMPT = [ChatMessage("user", "hello")]

pytestmark = pytest.mark.timeout(20)


def spec_for(replay: ReplayServer, backend: str = "openai") -> ModelSpec:
    return ModelSpec.model_validate({
        "id": "tiny", "title": "Tiny", "backend": backend, "base_url": replay.base_url,
        "model": "tiny", "timeouts": {"connect": 1, "first_token": 5, "total": 10}})


async def answer(name: str) -> tuple[str, Finished]:
    """Stream through chatmux's backend from a replay of the recorded exchange `name`."""
    async with ReplayServer(EXCHANGES) as replay:
        replay.answer_next(name)
        backend = OpenAICompatBackend(spec_for(replay), api_key=None)
        texts: list[str] = []
        finished: Finished | None = None
        try:
            async for event in backend.stream(PROMPT, {"max_tokens": 4}):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                else:
                    assert isinstance(event, Finished)
                    finished = event
        finally:
            await backend.aclose()
        assert replay.served == [name]
        assert finished is not None
        return "".join(texts), finished


def events(name: str) -> list[dict]:
    """The JSON events of a recorded stream."""
    payloads = [e.removeprefix("data: ") for e in EXCHANGES[name].body.split("\n\n")]
    return [json.loads(p) for p in payloads if p.startswith("{")]


def recorded_text(name: str) -> str:
    """The content of a recorded stream, joined."""
    return "".join(choice["delta"].get("content") or ""
                   for event in events(name) for choice in event.get("choices") or [])


def recorded_error(name: str) -> dict:
    exchange = EXCHANGES[name]
    if exchange.status == 200:
        [error] = [e["error"] for e in events(name) if "error" in e]
        return error
    return exchange.json()["error"]


@pytest.mark.parametrize("name", ["chat_stream", "chat_stream_without_usage"])
async def test_a_recorded_stream_gives_its_text_finish_and_usage(name):
    text, finished = await answer(name)
    assert text == recorded_text(name) and text
    assert finished.finish_reason == "length"
    if name == "chat_stream":
        [usage] = [e["usage"] for e in events(name) if "usage" in e]
        assert (finished.usage.prompt_tokens, finished.usage.completion_tokens) == (
            usage["prompt_tokens"], usage["completion_tokens"])
    else:  # no usage chunk was asked for
        assert finished.usage.prompt_tokens is None


@pytest.mark.parametrize(("name", "kind", "family"), [
    ("error_prompt_too_long", "context_too_long", ContextTooLong),
    ("error_prompt_too_many_characters", "context_too_long", ContextTooLong),
    # The prompt filled the context: vLLM capped max_tokens to 0 and refused that.
    ("error_prompt_fills_context", "context_too_long", ContextTooLong),
    # The server does not serve the model (any more): unavailable, not a bad question.
    ("error_unknown_model", "model_not_served", ModelUnavailable),
    ("error_in_stream", "stream_error", StreamBroken),
    ("error_max_tokens_over_context", "bad_request", BadRequest),
    ("error_temperature_negative", "bad_request", BadRequest),
    ("error_temperature_not_a_number", "bad_request", BadRequest),
    # chatmux never asks for max_tokens 0 (the catalogue wants > 0): "got 0" is vLLM's cap.
    ("error_max_tokens_zero", "context_too_long", ContextTooLong),
    ("error_max_tokens_negative", "bad_request", BadRequest),
    ("error_content_not_text", "bad_request", BadRequest),
    ("error_logit_bias", "bad_request", BadRequest),
])
async def test_a_recorded_error_is_typed(name: str, kind: str, family: type[BackendError]):
    with pytest.raises(BackendError) as caught:
        await answer(name)
    error = caught.value
    assert (error.kind, isinstance(error, family)) == (kind, True), (error, error.detail)
    if EXCHANGES[name].status != 200:
        assert error.detail.startswith(f"HTTP {EXCHANGES[name].status}: ")
    assert recorded_error(name)["message"][:60] in error.detail  # the server's words, for logs


def test_metrics_read_the_totals_and_ignore_created_samples():
    text = EXCHANGES["metrics"].body
    totals = {}
    for line in text.splitlines():
        for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED, RUNNING, WAITING):
            if line.startswith(name + "{"):
                totals[name] = float(line.rsplit(" ", 1)[1])
    created = [line for line in text.splitlines()
               if line.startswith("vllm:spec_decode_num_drafts_created{")]
    assert created and float(created[0].rsplit(" ", 1)[1]) > 1e9  # a timestamp, not a count
    stats = parse_metrics(text)
    assert stats.spec_drafts == totals[DRAFTS] > 0
    assert stats.spec_draft_tokens == totals[DRAFT_TOKENS] <= 3 * totals[DRAFTS]  # k = 3
    assert stats.spec_accepted_tokens == totals[ACCEPTED] <= totals[DRAFT_TOKENS]
    assert (stats.running, stats.waiting, stats.kv_cache_usage) == (0, 0, 0.0)
    # Acceptance over two scrapes: the recorded counters against zero at the server's start.
    zero = "\n".join(line.rsplit(" ", 1)[0] + " 0.0" if line.startswith("vllm:spec_decode")
                     else line for line in text.splitlines())
    tracker = SpecDecodeTracker()
    tracker.observe(parse_metrics(zero), 0.0)
    tracker.observe(stats, 5.0)
    assert tracker.acceptance_rate == totals[ACCEPTED] / totals[DRAFT_TOKENS]
    assert tracker.mean_acceptance_length == 1 + totals[ACCEPTED] / totals[DRAFTS]


async def test_the_recorded_server_is_ready_with_its_load_and_acceptance():
    async with ReplayServer(EXCHANGES) as replay:
        assert await served_models(replay.base_url, None) == ["tiny"]
        settings = RoutingSettings(health_interval=3600)
        backend = ReplicaSetBackend(spec_for(replay, "vllm"), None, settings=settings,
                                    clock=time.monotonic)
        await backend.start()
        try:
            await backend.refresh()
            [status] = backend.status()
        finally:
            await backend.aclose()
    assert status.state == "ready"
    assert (status.running, status.waiting, status.kv_cache_usage) == (0, 0, 0.0)
