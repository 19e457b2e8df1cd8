"""The fake vLLM server answers like the recorded real one (tests/fakes/recordings/).

The recorder's own requests drive `FakeModelServer` in its vLLM flavour, configured as the
recorded server was (served name, max_model_len, draft tokens); the shapes of its answers must
equal the recordings' (see tests/fakes/vllm_shapes.py for what is compared). Re-record with the
real tier (tests/vllm_real/test_recordings_real.py) when vLLM changes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_api import FakeModelServer, Thinking
from tests.fakes.vllm_shapes import compare, shape, sse_shape
from tests.vllm_real.recording import PROBES, REASONING_PROBES, Exchange, load, record

RECORDINGS = Path(__file__).resolve().parents[1] / "fakes" / "recordings" / "vllm-0.32.0"
ABOUT = json.loads((RECORDINGS / "about.json").read_text())
# vLLM with `--reasoning-parser deepseek_r1` (tests/vllm_real/test_reasoning_real.py).
REASONING = RECORDINGS.with_name("vllm-0.32.0-deepseek_r1")

pytestmark = pytest.mark.timeout(30)


def like_recorded() -> FakeModelServer:
    return FakeModelServer({ABOUT["served_model_name"]: ABOUT["max_model_len"]}, flavour="vllm",
                           num_speculative_tokens=ABOUT["num_speculative_tokens"])


def test_every_probe_is_recorded():
    assert set(load(RECORDINGS)) == {probe.name for probe in PROBES}


async def test_the_fake_answers_like_the_recorded_vllm():
    async with like_recorded() as fake:
        observed = await record(fake.root)
    found = compare(load(RECORDINGS), observed)
    assert not found, "the fake diverges from vLLM's recordings:\n" + "\n".join(found)


async def test_the_fake_reasons_like_the_recorded_vllm_with_a_reasoning_parser():
    """`delta.reasoning` chunks before the content, the finish on the last reasoning chunk when
    max_tokens cuts the thinking, `content: null` in a whole answer that only thought, and
    `completion_tokens_details.reasoning_tokens` in the usage."""
    about = json.loads((REASONING / "about.json").read_text())
    model = about["served_model_name"]
    async with FakeModelServer({model: about["max_model_len"]}, flavour="vllm") as fake:
        fake.set_reply(model, Thinking("First some quick math, then a check.", "YES-42."))
        observed = await record(fake.root, REASONING_PROBES)
    assert set(load(REASONING)) == {probe.name for probe in REASONING_PROBES}
    found = compare(load(REASONING), observed)
    assert not found, "the fake reasons unlike vLLM's recordings:\n" + "\n".join(found)


def _altered(exchange: Exchange, body: str) -> Exchange:
    changed = copy.copy(exchange)
    changed.body = body
    return changed


def test_the_comparison_notices_each_kind_of_divergence():
    """Guards the guard: a changed status, key, type, constant, error field, SSE framing,
    metric TYPE or `_created` companion is reported."""
    recorded = load(RECORDINGS)
    stream = recorded["chat_stream"].body
    without_usage = "\n\n".join(e for e in stream.split("\n\n") if '"usage"' not in e)
    error = recorded["error_unknown_model"].json()
    error["error"]["type"] = "invalid_request_error"
    chat = recorded["chat"].json()
    chat["usage"]["prompt_tokens"] = 1.5
    del chat["system_fingerprint"]
    chat["choices"][0]["finish_reason"] = "abort"
    metrics = recorded["metrics"].body
    cases = {
        "chat_stream": (_altered(recorded["chat_stream"], without_usage),
                        ["sse.sequence", "sse.chunks.usage"]),
        "error_unknown_model": (_altered(recorded["error_unknown_model"], json.dumps(error)),
                                ["error.type: expected 'NotFoundError'"]),
        "chat": (_altered(recorded["chat"], json.dumps(chat)),
                 ["json.usage.prompt_tokens: expected 'int', got 'float'",
                  "json.system_fingerprint: missing",
                  "constants"]),
        "metrics": (_altered(recorded["metrics"], metrics.replace(
            "# TYPE vllm:spec_decode_num_drafts_total counter",
            "# TYPE vllm:spec_decode_num_drafts counter").replace(
            "vllm:spec_decode_num_accepted_tokens_created{", "other_created{")),
                    ["vllm:spec_decode_num_drafts_total.type: expected 'counter', got None",
                     "vllm:spec_decode_num_accepted_tokens_created.present"]),
    }
    for name, (changed, expected) in cases.items():
        report = "\n".join(compare({name: recorded[name]}, {name: changed}))
        for needle in expected:
            assert needle in report, (name, needle, report)
    assert compare(recorded, recorded) == []
    framing = sse_shape(stream.replace("\n\n", "\n", 1))
    assert not framing["framing_ok"]


async def test_an_injected_error_inside_a_stream_is_framed_like_vllm():
    """vLLM sends an error after a 200 as `data: {"error": …}` and still ends with [DONE]."""
    recorded = sse_shape(load(RECORDINGS)["error_in_stream"].body)
    assert recorded["sequence"][-2:] == ["error", "[DONE]"]
    async with like_recorded() as fake:
        fake.fail_mid_stream_next(after_chunks=1, status=400, message="boom")
        body = {"model": "tiny", "messages": [{"role": "user", "content": "a b c d e f"}],
                "stream": True}
        async with (aiohttp.ClientSession() as session,
                    session.post(f"{fake.base_url}/chat/completions", json=body) as resp):
            exchange = Exchange("x", "POST", "/v1/chat/completions", body, resp.status,
                                resp.headers.get("Content-Type"), await resp.text())
    observed = shape(exchange)["sse"]
    assert observed["framing_ok"]
    assert observed["sequence"] == ["role", "content", "error", "[DONE]"]
    assert observed["chunks"]["error"] == recorded["chunks"]["error"]
    assert observed["errors"] == [{"type": "BadRequestError", "param": None, "code": 400,
                                   "message": "boom"}]
