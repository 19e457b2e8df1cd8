"""Issue 13, item 4: the two speculative engines against each other and plain greedy decoding.

For the tiny target and its draft (fp32, greedy, k = 3), on a fixed set of prompts: plain
`generate(do_sample=False)` of the target, chatmux's engine (`HFBackend`, what `backend: hf`
runs) with the draft, and real vLLM with the draft (`spec_server`, whole and streamed) write
the same tokens and text. Their acceptance counters differ, and each is checked against the
schedule its engine must follow (see `tests/vllm_real/cross_check.py`). A second pair, free
to write any byte and eos, is served too: stops and bytes that are no text read the same; so
does a stop token that is an ordinary token, and a repetition penalty the model's
generation_config sets. The last test shows the comparison can fail: what must not change the
text (k, a useless draft) does not, what must (max_tokens, the template) does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from inference.local.engine import fallback_prompt
from tests.local_models import byte_tokenizer, disagreeing_draft, save_model
from tests.vllm_real.cross_check import (
    PROMPTS,
    SERVED,
    K,
    Reference,
    chatmux_answer,
    compare,
    disagreement,
    hf_backend,
    load_pair,
    references,
    render_table,
    unrestricted_pair,
    vllm_answer,
    vllm_completion,
    with_generation_config,
    with_stop_tokens,
)
from tests.vllm_real.servers import VllmServer


@pytest.fixture(scope="module")
def refs(tiny_pair: tuple[Path, Path]) -> list[Reference]:
    """Plain greedy answers of the target to PROMPTS (with the draft's agreement)."""
    return references(*tiny_pair)


async def test_plain_greedy_chatmux_and_vllm_write_the_same_text(spec_server, tiny_pair, refs):
    backend = hf_backend(*tiny_pair)
    try:
        rows, problems = await compare(refs, PROMPTS, backend, spec_server.base_url)
    finally:
        await backend.aclose()
    print("\n" + render_table(rows))
    assert problems == []
    assert all(row.agree for row in rows) and len(rows) == len(PROMPTS) >= 8
    # Every answer ran to max_tokens (the tiny target never picks eos) and the draft was
    # both right and wrong along the way, so the schedules were exercised.
    assert {len(ref.answer_ids) for ref in refs} == {refs[0].max_tokens}
    drafted = sum(row.chatmux.drafted for row in rows if row.chatmux)
    accepted = sum(row.chatmux.accepted for row in rows if row.chatmux)
    assert 0 < accepted < drafted


@pytest.fixture(scope="module")
def unrestricted(tmp_path_factory, vllm_python, vllm_logs
                 ) -> Iterator[tuple[tuple[Path, Path], VllmServer]]:
    """A pair free to write any token (see `unrestricted_pair`), served like `spec_server`.
    The shared pair cannot stop or write anything but printable ASCII, so this one is what
    shows how both engines stop at eos and turn bytes into text."""
    pair = unrestricted_pair(tmp_path_factory.mktemp("unrestricted"))
    server = VllmServer(vllm_python, pair[0], SERVED, vllm_logs / "unrestricted.log",
                        draft=pair[1], k=K)
    server.start()
    try:
        server.wait_ready()
        yield pair, server
    finally:
        server.stop()


async def test_eos_and_bytes_that_are_not_text_read_the_same_in_both_engines(unrestricted):
    pair, server = unrestricted
    refs = await asyncio.to_thread(references, *pair)
    backend = hf_backend(*pair)
    try:
        rows, problems = await compare(refs, PROMPTS, backend, server.base_url)
    finally:
        await backend.aclose()
    print("\n" + render_table(rows))
    assert problems == []
    # What this pair is here for still happens: an answer stops at eos, one ends inside a
    # character (transformers' decode shows U+FFFD there; neither engine does), and most
    # hold bytes that are no UTF-8 (U+FFFD inside the text, the same in all three).
    assert any(ref.finish_reason == "stop" for ref in refs)
    assert any(ref.decoded != ref.text and ref.finish_reason == "length" for ref in refs)
    assert sum("\ufffd" in ref.text for ref in refs) >= len(refs) // 2


async def test_a_stop_token_ends_the_answer_unseen_even_if_it_is_no_special_token(
    spec_server, tiny_pair, tmp_path
):
    """Some models end a turn with an ordinary token their generation_config lists as eos.
    vLLM stops there and never shows it; so must chatmux's engine (decoding would show it)."""
    target, draft = tiny_pair
    tokenizer = byte_tokenizer()
    stops = [tokenizer.convert_tokens_to_ids(c) for c in "zf"]  # in most answers
    stopping = with_stop_tokens(target, tmp_path / "stops-at-z-f", stops)
    refs = await asyncio.to_thread(references, stopping, draft)
    backend = hf_backend(stopping, draft)
    try:
        # vLLM serving `stopping` would add its eos ids to every request's stop_token_ids
        # (SamplingParams.update_from_generation_config): the same as asking for them.
        rows, problems = await compare(refs, PROMPTS, backend, spec_server.base_url,
                                       vllm_extra={"stop_token_ids": stops})
    finally:
        await backend.aclose()
    print("\n" + render_table(rows))
    assert problems == []
    assert sum(ref.stopped for ref in refs) >= len(refs) // 2


async def test_the_models_repetition_penalty_applies_in_both_engines(spec_server, tiny_pair,
                                                                     tmp_path):
    """A repetition_penalty in generation_config.json (Qwen2.5-Instruct sets 1.05): vLLM makes
    it every request's default, greedy ones too, and transformers applies it; chatmux's
    engine must as well, or the same model answers otherwise in the two engines."""
    target, draft = tiny_pair
    penalized = with_generation_config(target, tmp_path / "penalized", repetition_penalty=1.3)
    refs = await asyncio.to_thread(references, penalized, draft)
    backend = hf_backend(penalized, draft)
    try:
        # vLLM serving `penalized` would default every request's repetition_penalty to 1.3
        # (ModelConfig.get_diff_sampling_param): the same as asking for it.
        rows, problems = await compare(refs, PROMPTS, backend, spec_server.base_url,
                                       vllm_extra={"repetition_penalty": 1.3})
    finally:
        await backend.aclose()
    print("\n" + render_table(rows))
    assert problems == []
    unpenalized = await asyncio.to_thread(references, target, draft)
    assert sum(a.text != b.text for a, b in zip(refs, unpenalized, strict=True)) >= 8


def _without_template(target: Path, into: Path) -> Path:
    """The target's files without its chat template (the engine falls back to `Role: text`)."""
    into.mkdir()
    for item in target.iterdir():
        if item.name != "chat_template.jinja":
            (into / item.name).symlink_to(item)
    return into


async def test_the_cross_check_fails_when_what_must_match_does_not(
    spec_server, tiny_pair, refs, tmp_path
):
    target, draft = tiny_pair
    tokenizer, target_model, _ = await asyncio.to_thread(load_pair, target, draft)
    useless = await asyncio.to_thread(save_model, tmp_path / "useless-draft",
                                      disagreeing_draft(target_model), tokenizer)

    # Speculation is lossless: other k, or a draft that is never right, same text.
    for k, draft_dir in ((1, draft), (5, draft), (3, useless)):
        backend = hf_backend(target, draft_dir, k)
        try:
            for ref, prompt in zip(refs, PROMPTS, strict=True):
                answer = await chatmux_answer(backend, prompt, ref.max_tokens)
                assert disagreement(ref, {"chatmux": answer}) is None, (k, draft_dir, prompt)
                assert answer.acceptance is not None
                if draft_dir == useless:
                    assert answer.acceptance.accepted == 0 < answer.acceptance.drafted
        finally:
            await backend.aclose()

    shorter = refs[0].max_tokens - 5
    backend = hf_backend(target, draft)
    plain = hf_backend(_without_template(target, tmp_path / "no-template"), None)
    try:
        async with aiohttp.ClientSession() as session:
            for ref, prompt in zip(refs, PROMPTS, strict=True):
                # max_tokens counts: five fewer tokens is another answer (the same, cut
                # short), for both engines.
                cut = {"chatmux": await chatmux_answer(backend, prompt, shorter),
                       "vLLM": await vllm_answer(session, spec_server.base_url, prompt,
                                                 max_tokens=shorter)}
                assert all(ref.text.startswith(answer.text) for answer in cut.values())
                why = disagreement(ref, cut) or ""
                assert why.count("text differs") == 2, why
                assert why.count(f"{shorter} completion tokens, not {ref.max_tokens}") == 2, why
                # The template counts: vLLM given our prompt's token ids writes our text…
                same = await vllm_completion(session, spec_server.base_url, ref.prompt_ids)
                assert same == ref.text
                # …and given a prompt in another format (what our engine sends for a model
                # without a chat template), another text, which our engine writes too.
                other_ids = tokenizer(fallback_prompt(prompt.chat()))["input_ids"]
                other = await vllm_completion(session, spec_server.base_url, other_ids)
                ours = await chatmux_answer(plain, prompt, ref.max_tokens)
                assert ours.prompt_tokens == len(other_ids)
                assert ours.text == other != ref.text
    finally:
        await backend.aclose()
        await plain.aclose()
