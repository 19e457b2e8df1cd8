"""Pure pieces of a turn: paced frames, history building, context fitting."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.answering import build_request, history_for
from bot.streaming.pacer import pump
from inference.catalogue import ModelSpec
from inference.context import fit_to_context
from inference.errors import ContextTooLong, StreamBroken
from inference.protocol import ChatMessage, Finished, TextDelta, Usage
from storage.models import Message


class RecordingView:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.reasoning_frames: list[str] = []
        self.keepalives = 0

    async def show(self, markdown: str, reasoning: str = "") -> None:
        self.frames.append(markdown)
        self.reasoning_frames.append(reasoning)

    async def keepalive(self) -> None:
        self.keepalives += 1

    async def finish(self, markdown: str, *, reply_markup=None) -> list[int]:
        return [1]


async def tokens(n: int, delay: float, fail_at: int | None = None):
    for i in range(n):
        if fail_at is not None and i == fail_at:
            raise StreamBroken("boom")
        await asyncio.sleep(delay)
        yield TextDelta(f"t{i} ")
    yield Finished("stop", Usage(3, n))


async def test_frames_are_paced_not_one_per_token():
    view = RecordingView()
    outcome = await pump(tokens(60, 0.005), view, interval=0.1)
    assert outcome.text == "".join(f"t{i} " for i in range(60))
    assert outcome.finish_reason == "stop" and outcome.usage.completion_tokens == 60
    assert 1 <= len(view.frames) <= 8  # ~0.3 s of tokens at 0.1 s per frame
    assert all(b.startswith(a) for a, b in zip(view.frames, view.frames[1:], strict=False))
    assert outcome.ttft is not None and outcome.ttft < outcome.total


async def test_error_mid_stream_keeps_the_text_received():
    outcome = await pump(tokens(10, 0.001, fail_at=5), RecordingView(), interval=0.01)
    assert isinstance(outcome.error, StreamBroken)
    assert outcome.text == "t0 t1 t2 t3 t4 "


async def test_stop_event_cancels_the_stream():
    stop = asyncio.Event()
    view = RecordingView()
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                await asyncio.sleep(0.01)
                yield TextDelta("x")
        finally:
            closed.set()

    asyncio.get_running_loop().call_later(0.1, stop.set)
    outcome = await pump(endless(), view, interval=0.02, stop=stop)
    assert outcome.stopped and outcome.text and closed.is_set()


async def test_keepalive_when_the_model_is_silent():
    async def slow():
        await asyncio.sleep(0.25)
        yield TextDelta("late")
        yield Finished("stop")

    view = RecordingView()
    outcome = await pump(slow(), view, interval=0.01, keepalive=0.1)
    assert outcome.text == "late" and view.keepalives >= 1


@pytest.mark.parametrize("with_stop", [True, False], ids=["private", "group"])
async def test_the_outcome_is_ready_as_soon_as_the_stream_ends(with_stop):
    """The final message goes out when the model finishes, not a frame interval later (the
    pacer once waited for the stream *and* the stop button, which is only pressed by a user)."""
    async def quick():
        yield TextDelta("Hello")
        await asyncio.sleep(0.05)
        yield TextDelta(" world")
        yield Finished("stop")

    view = RecordingView()
    stop = asyncio.Event() if with_stop else None
    started = asyncio.get_running_loop().time()
    outcome = await asyncio.wait_for(pump(quick(), view, interval=30.0, stop=stop), 5)
    assert outcome.text == "Hello world" and outcome.finish_reason == "stop"
    assert view.frames == ["Hello"]  # shown at once; the rest goes with the final message
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_stop_during_the_interval_ends_the_stream_at_once():
    stop = asyncio.Event()

    async def endless():
        while True:
            await asyncio.sleep(0.005)
            yield TextDelta("x")

    asyncio.get_running_loop().call_later(0.1, stop.set)
    outcome = await asyncio.wait_for(pump(endless(), RecordingView(), interval=30.0, stop=stop), 5)
    assert outcome.stopped and outcome.text


async def test_frames_follow_the_text_growth_not_the_time_it_takes():
    """A process slowed down by load reads the same answer over more time: the frames of a
    slow stream stay as many as its growth warrants (each one adds half again, or STALE
    seconds passed), however many intervals it lasts."""
    async def trickle():
        for _ in range(150):
            await asyncio.sleep(0.004)
            yield TextDelta("ab")  # 300 characters over ~0.6 s
        yield Finished("stop")

    view = RecordingView()
    outcome = await pump(trickle(), view, interval=0.01)
    assert len(outcome.text) == 300
    lengths = [len(f) for f in view.frames]
    assert lengths == sorted(lengths) and len(lengths) >= 3
    # ~60 intervals passed; growth by half (and ≥ 48 characters) allows only a few frames.
    assert len(lengths) <= 6
    for before, after in itertools.pairwise(lengths):
        assert after - before >= max(48, before // 2)


def msg(role: str, content: str, status: str = "complete") -> Message:
    return Message(role=role, content=content, status=status)


def test_history_skips_failed_answers_and_merges_same_role_runs():
    path = [
        msg("user", "q1"), msg("assistant", "a1"),
        msg("user", "q2"), msg("assistant", "", status="error"),
        msg("user", "q3"),
    ]
    assert history_for(path) == [
        ChatMessage("user", "q1"), ChatMessage("assistant", "a1"),
        ChatMessage("user", "q2\n\nq3"),
    ]


async def test_request_has_system_prompt_and_fits_the_window():
    spec = ModelSpec.model_validate({
        "id": "a", "title": "A", "base_url": "http://x/v1", "model": "m",
        "system_prompt": "Be kind.", "context_window": 400, "params": {"max_tokens": 100},
    })
    path = []
    for i in range(30):
        path += [msg("user", f"question {i} " * 10), msg("assistant", f"answer {i} " * 10)]
    path.append(msg("user", "last"))
    fitted = await build_request(spec, path)
    request = fitted.messages
    assert fitted.dropped == len(history_for(path)) - (len(request) - 1)
    assert request[0] == ChatMessage("system", "Be kind.")
    assert request[-1] == ChatMessage("user", "last")
    assert request[1].role == "user"  # never starts with an orphaned answer
    assert 2 < len(request) < 62


async def test_a_message_that_alone_exceeds_the_window_is_refused():
    with pytest.raises(ContextTooLong):
        await fit_to_context([ChatMessage("user", "x" * 10_000)], 1000, 100)


def test_history_skips_answers_the_user_never_saw_even_with_text():
    """Undelivered answers keep their text (it is what the model wrote) but were never seen:
    a model must not be told it said them. Older trees may still hold such paths."""
    path = [
        msg("user", "q1"), msg("assistant", "never shown", status="undelivered"),
        msg("user", "q2"), msg("assistant", "  ", status="empty"),
        msg("user", "q3"), msg("assistant", "cut short", status="cut"),
    ]
    assert history_for(path) == [
        ChatMessage("user", "q1\n\nq2\n\nq3"), ChatMessage("assistant", "cut short"),
    ]


async def test_pump_cleans_text_as_it_arrives():
    async def odd():
        for piece in ("a\x00b ", "\ud83d", "\ude00 \r", "\nc"):
            yield TextDelta(piece)
        yield Finished("stop")

    view = RecordingView()
    outcome = await pump(odd(), view, interval=0.0)
    assert outcome.text == "ab 😀 \nc"
    assert all("\x00" not in f and "\ufffd" not in f for f in view.frames)
