"""`HFBackend` over `LocalEngine`: loading, streaming, queueing, cancellation and errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import warnings
from contextlib import aclosing
from pathlib import Path

import pytest
import torch

from inference.errors import ContextTooLong, ModelUnavailable
from inference.local import HFBackend, LocalEngineUnavailable, ModelLoadError
from inference.local.detokenize import IncrementalDetokenizer
from inference.local.engine import fallback_prompt
from inference.local.loading import load_model, load_tokenizer
from inference.local.sampling import SamplingParams
from inference.local.speculative import SpeculativeDecoder
from inference.protocol import ChatMessage, Finished, TextDelta
from tests.local_models import (
    BYTE_VOCAB_SIZE,
    byte_tokenizer,
    chat_model_dir,
    save_model,
    stacked_pair,
)

ROOT = Path(__file__).resolve().parents[2]
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello, wörld ✓")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("local-models")
    draft, target = stacked_pair(
        eps=0.5, seed=2, vocab_size=BYTE_VOCAB_SIZE, logit_scale=4.0, draft_layers=1,
        extra_layers=1,
    )
    tokenizer = byte_tokenizer()
    return {
        "target": save_model(base / "target", target, tokenizer),
        "draft": save_model(base / "draft", draft),
        "short": chat_model_dir(base / "short", max_positions=48),
        "plain": chat_model_dir(base / "plain", chat_template=False),
    }


async def collect(backend: HFBackend, messages=HELLO, params=None):
    events = [e async for e in backend.stream(messages, params or {"max_tokens": 24})]
    assert isinstance(events[-1], Finished)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), events[-1]


def slow_steps(backend: HFBackend, delay: float, log: list | None = None) -> None:
    """Make every verification step of the loaded decoder take at least `delay` seconds,
    and log (start, end, longest queue seen) of each generation."""
    loaded = backend.engine._loaded
    assert loaded is not None
    original = loaded.decoder.generate

    def generate(prompt_ids, params, *, on_tokens=None, **kwargs):
        queued = [0]

        def slowed(ids):
            time.sleep(delay)
            queued[0] = max(queued[0], backend.engine.queue_length)
            if on_tokens is not None:
                on_tokens(ids)

        start = time.monotonic()
        try:
            return original(prompt_ids, params, on_tokens=slowed, **kwargs)
        finally:
            if log is not None:
                log.append((start, time.monotonic(), queued[0]))

    loaded.decoder.generate = generate  # type: ignore[method-assign]


async def test_streams_the_greedy_answer_then_finished_with_stats(models):
    backend = HFBackend(str(models["target"]), draft_path=str(models["draft"]),
                        num_speculative_tokens=3)
    try:
        text, finished = await collect(backend, params={"max_tokens": 24, "temperature": 0})
    finally:
        await backend.aclose()

    tokenizer = load_tokenizer(models["target"])
    prompt_text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in HELLO],
        add_generation_prompt=True, tokenize=False,
    )
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    plain = SpeculativeDecoder(load_model(models["target"])).generate(
        prompt, SamplingParams(max_new_tokens=24, eos_token_ids=frozenset({2})),
    )
    # The answer is cut inside a character: its unfinished bytes are not shown (as in vLLM).
    full = tokenizer.decode(plain.token_ids, skip_special_tokens=True)
    assert full.endswith("\ufffd")
    assert text == full.rstrip("\ufffd")
    assert finished.finish_reason == ("stop" if plain.finish_reason == "stop" else "length")
    assert finished.usage.prompt_tokens == len(prompt)
    assert finished.usage.completion_tokens == len(plain.token_ids)
    stats = finished.decoding
    assert stats is not None
    assert stats.generated_tokens == len(plain.token_ids)
    assert stats.drafted_tokens > 0 and stats.verify_steps > 0
    assert stats.generated_tokens == stats.verify_steps + stats.accepted_tokens
    totals = backend.totals()
    assert totals["requests"] == 1 and totals["generated_tokens"] == stats.generated_tokens
    assert totals["queue_length"] == 0 and totals["num_speculative_tokens"] == 3


async def test_sampling_params_and_seed(models):
    backend = HFBackend(str(models["target"]), draft_path=str(models["draft"]))
    params = {"max_tokens": 16, "temperature": 0.9, "top_p": 0.9, "seed": 7}
    try:
        first, _ = await collect(backend, params=params)
        second, _ = await collect(backend, params=params)
    finally:
        await backend.aclose()
    assert first == second


async def test_concurrent_streams_run_one_at_a_time_in_arrival_order(models):
    backend = HFBackend(str(models["target"]), draft_path=str(models["draft"]))
    await backend.engine.load()
    log: list[tuple[float, float, int]] = []
    slow_steps(backend, 0.005, log)
    try:
        first = asyncio.create_task(collect(backend, params={"max_tokens": 12}))
        await asyncio.sleep(0)  # the first one takes its turn before the second asks
        second = asyncio.create_task(collect(backend, params={"max_tokens": 12}))
        results = await asyncio.gather(first, second)
    finally:
        await backend.aclose()
    assert all(r[1].usage.completion_tokens for r in results)
    (_, end_a, queued_a), (start_b, _, queued_b) = log
    assert end_a <= start_b  # serialized
    assert queued_a == 1 and queued_b == 0  # the second waited while the first ran
    assert backend.totals()["requests"] == 2


async def test_closing_the_stream_stops_the_worker_and_frees_the_turn(models):
    backend = HFBackend(str(models["target"]), draft_path=str(models["draft"]))
    await backend.engine.load()
    slow_steps(backend, 0.01)
    try:
        stream = backend.stream(HELLO, {"max_tokens": 150})
        async with aclosing(stream):
            async for event in stream:
                assert isinstance(event, TextDelta)
                break
        _, finished = await asyncio.wait_for(
            collect(backend, params={"max_tokens": 4}), 5,
        )
        assert finished.usage.completion_tokens == 4
        totals = backend.totals()
        assert totals["cancelled"] == 1 and totals["requests"] == 2
        assert totals["generated_tokens"] < 4 + 150 // 2  # stopped long before the end
    finally:
        await backend.aclose()


async def test_cancelling_the_consumer_task_stops_the_worker(models):
    backend = HFBackend(str(models["target"]))
    await backend.engine.load()
    slow_steps(backend, 0.01)
    got_text = asyncio.Event()

    async def consume() -> None:
        async for event in backend.stream(HELLO, {"max_tokens": 150}):
            if isinstance(event, TextDelta):
                got_text.set()

    try:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_text.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _, finished = await asyncio.wait_for(collect(backend, params={"max_tokens": 3}), 5)
        assert finished.usage.completion_tokens == 3
        assert backend.totals()["cancelled"] == 1
    finally:
        await backend.aclose()


async def test_concurrent_first_requests_load_the_models_once(models):
    backend = HFBackend(str(models["target"]))
    engine = backend.engine
    calls: list[int] = []
    original = engine._load_sync

    def load_sync():
        calls.append(1)
        return original()

    engine._load_sync = load_sync  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(collect(backend, params={"max_tokens": 2}) for _ in range(3)))
    finally:
        await backend.aclose()
    assert calls == [1]


async def test_a_failure_in_the_worker_is_a_backend_error_and_frees_the_turn(models):
    backend = HFBackend(str(models["target"]))
    loaded = await backend.engine.load()
    original = loaded.decoder.generate

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    loaded.decoder.generate = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(ModelUnavailable, match="boom"):
            await collect(backend)
        loaded.decoder.generate = original  # type: ignore[method-assign]
        _, finished = await asyncio.wait_for(collect(backend, params={"max_tokens": 2}), 5)
        assert finished.usage.completion_tokens == 2
    finally:
        await backend.aclose()


async def test_a_missing_model_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    backend = HFBackend(str(missing))
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        await collect(backend)
    await backend.aclose()
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_model(missing)


def test_a_directory_without_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tmp_path)


async def test_a_prompt_longer_than_the_context_is_refused(models):
    backend = HFBackend(str(models["short"]))
    try:
        with pytest.raises(ContextTooLong):
            await collect(backend, [ChatMessage("user", "x" * 60)])
        # A prompt that fits is answered, its max_tokens cut to the room that is left.
        _, finished = await collect(backend, [ChatMessage("user", "hi")], {"max_tokens": 100})
        assert finished.usage.prompt_tokens + finished.usage.completion_tokens <= 48
    finally:
        await backend.aclose()


async def test_without_a_chat_template_the_fallback_format_is_used(models):
    backend = HFBackend(str(models["plain"]))
    try:
        _, finished = await collect(backend)
    finally:
        await backend.aclose()
    tokenizer = load_tokenizer(models["plain"])
    assert fallback_prompt(HELLO) == "System: Be brief.\nUser: Hello, wörld ✓\nAssistant:"
    assert finished.usage.prompt_tokens == len(tokenizer(fallback_prompt(HELLO))["input_ids"])


async def test_a_closed_backend_refuses_requests_and_frees_the_models(models):
    backend = HFBackend(str(models["target"]))
    await collect(backend)
    assert backend.engine.loaded
    await backend.aclose()
    assert not backend.engine.loaded
    with pytest.raises(ModelUnavailable, match="closed"):
        await collect(backend)


def test_load_model_devices_and_dtypes(models):
    model = load_model(models["target"], device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    assert load_model(models["target"]).dtype == torch.float32  # auto on CPU
    with pytest.raises(ValueError, match="dtype"):
        load_model(models["target"], dtype="float8")


def test_detokenizer_holds_back_incomplete_characters():
    tokenizer = byte_tokenizer()
    text = "héllo ✓ 🙂!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [2]
    detokenizer = IncrementalDetokenizer(tokenizer)
    deltas = [detokenizer.push([i]) for i in ids]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == text
    assert sum(1 for d in deltas if d) < len(ids)  # some bytes waited for the rest


def test_detokenizer_never_shows_an_unfinished_character():
    tokenizer = byte_tokenizer()
    ids = tokenizer("a✓", add_special_tokens=False)["input_ids"][:-1]
    detokenizer = IncrementalDetokenizer(tokenizer)
    assert detokenizer.push(ids) == "a"
    assert detokenizer.push([]) == ""


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def test_importing_the_package_does_not_import_torch():
    done = _run_python("import sys, inference.local; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_torch_the_error_names_the_extra():
    done = _run_python(
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from inference.local import HFBackend, LocalEngineUnavailable\n"
        "from inference.local.loading import load_model\n"
        "for attempt in (lambda: HFBackend('/models/x'), lambda: load_model('/models/x')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except LocalEngineUnavailable as exc:\n"
        "        print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines == ["backend: hf needs the local engine: pip install 'chatmux[local]'"] * 2
    assert str(LocalEngineUnavailable()) == lines[0]


def test_the_worker_thread_is_not_the_event_loop_thread(models):
    seen: list[str] = []

    async def main() -> None:
        backend = HFBackend(str(models["target"]))
        await backend.engine.load()
        loaded = backend.engine._loaded
        assert loaded is not None
        original = loaded.decoder.generate

        def generate(*args, **kwargs):
            seen.append(threading.current_thread().name)
            return original(*args, **kwargs)

        loaded.decoder.generate = generate  # type: ignore[method-assign]
        await collect(backend, params={"max_tokens": 2})
        await backend.aclose()

    asyncio.run(main())
    assert seen and seen[0].startswith("chatmux-local")


def test_the_kv_cache_goes_by_the_name_the_model_takes(models):
    # transformers 5 renamed forward's `past_key_values` to `cache` and drops the old name
    # in 5.40; passed under the old name, the cache would land in **kwargs and every step
    # would see only its own tokens.
    model = load_model(models["target"], "cpu", "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SpeculativeDecoder(model).generate([5, 9, 14], SamplingParams(max_new_tokens=4))
    assert not [w for w in caught if "past_key_values" in str(w.message)]
