"""`Answerer.drain`: a shutdown waits for answers being written, within bounds."""

from __future__ import annotations

import asyncio

from bot.answering import Answerer, Turn
from bot.settings import Settings
from bot.streaming.stops import StopSignals


def answerer() -> Answerer:
    # drain needs none of the turn's collaborators
    return Answerer(Settings(_env_file=None), None, None, None, None,  # type: ignore[arg-type]
                    StopSignals())


async def turn(answerer: Answerer, entered: asyncio.Event, hold: asyncio.Event) -> str:
    async with answerer._tracked():
        entered.set()
        await hold.wait()
    return "done"


async def test_drain_without_answers_interrupts_nothing():
    a = answerer()
    await a.drain(0)
    assert not a.interrupting


async def test_an_answer_ending_within_the_grace_is_not_interrupted():
    a, entered, hold = answerer(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(turn(a, entered, hold))
    await entered.wait()
    asyncio.get_running_loop().call_later(0.05, hold.set)
    await a.drain(5)
    assert await task == "done" and not a.interrupting


async def test_a_turn_still_busy_after_the_final_sends_is_cancelled():
    a, entered = answerer(), asyncio.Event()
    task = asyncio.create_task(turn(a, entered, asyncio.Event()))  # never ends by itself
    await entered.wait()
    await a.drain(0.05, final=0.05, margin=0.05)
    assert a.interrupting
    assert task.cancelled()


async def test_a_stream_is_stopped_when_the_grace_is_over_or_at_once_after():
    a = answerer()
    view = object()  # not a draft: no stop button to watch
    t = Turn(chat_id=1, chat_type="group", thread_id=None, reply_to=None, lang="en")
    entered = asyncio.Event()

    async def streaming() -> bool:
        async with a._tracked():
            with a._stop_event(t, view) as stop:  # type: ignore[arg-type]
                entered.set()
                await stop.wait()
                return stop.is_set()

    task = asyncio.create_task(streaming())
    await entered.wait()
    await a.drain(0.05, final=1, margin=0.05)
    assert await task is True
    with a._stop_event(t, view) as late:  # type: ignore[arg-type]
        assert late.is_set()
