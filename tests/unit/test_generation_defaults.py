"""A model's generation_config shapes its answers in chatmux's engine as it does in vLLM and
transformers: its repetition_penalty (greedy too) and top_k, through assisted decoding.

vLLM takes repetition_penalty, top_k, top_p (and more) from generation_config.json as every
request's defaults (`ModelConfig.get_diff_sampling_param`); transformers' `generate` applies
them too. The real tier checks the penalty against a real server
(`tests/vllm_real/test_cross_check.py`).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from inference.local import HFBackend
from inference.local.sampling import SamplingParams, penalize, probabilities
from inference.local.speculative import SpeculativeDecoder, make_generator
from inference.protocol import ChatMessage, Finished, TextDelta
from tests.local_models import (
    BYTE_VOCAB_SIZE,
    byte_tokenizer,
    printable_only,
    save_model,
    stacked_pair,
)
from tests.unit.test_speculative import TrigramLM, goodness_of_fit, random_prompts

PENALTY = 1.3


@pytest.fixture(scope="module")
def pair():
    """A draft that agrees with the target often (greedy)."""
    return stacked_pair(eps=0.3, seed=4, vocab_size=96, logit_scale=4.0)


def test_penalize_marks_each_row_with_the_drafts_before_it():
    logits = torch.tensor([[2.0, -2.0, 2.0, 1.0]] * 3)
    seen = torch.tensor([True, False, False, False])
    out = penalize(logits, seen, [1, 2], 2.0)
    assert out.tolist() == [[1.0, -2.0, 2.0, 1.0],   # the sequence: token 0
                            [1.0, -4.0, 2.0, 1.0],   # …then draft 1
                            [1.0, -4.0, 1.0, 1.0]]   # …then draft 2
    assert penalize(logits, seen, [1, 2], 1.0) is logits


def test_greedy_with_a_repetition_penalty_is_transformers_greedy(pair):
    draft, target = pair
    prompts = random_prompts(12, seed=3, vocab=96)
    params = SamplingParams(max_new_tokens=24, repetition_penalty=PENALTY,
                            eos_token_ids=frozenset({2}))
    expected = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            out = target.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=24, repetition_penalty=PENALTY)
            expected.append(out[0, len(prompt):].tolist())
    unpenalized = SpeculativeDecoder(target).generate
    assert sum(unpenalized(p, SamplingParams(max_new_tokens=24, eos_token_ids=frozenset({2})))
               .token_ids != want for p, want in zip(prompts, expected, strict=True)) >= 9
    for k in (0, 1, 3, 5):
        decoder = SpeculativeDecoder(target, draft if k else None,
                                     num_speculative_tokens=max(k, 1))
        accepted = 0
        for prompt, want in zip(prompts, expected, strict=True):
            result = decoder.generate(prompt, params)
            assert result.token_ids == want, (k, prompt)
            accepted += result.stats.accepted_tokens
        assert k == 0 or accepted > 0  # drafts verified against penalized rows


def _processed(table: torch.Tensor, ids: list[int], temperature: float, top_k: int,
               penalty: float) -> torch.Tensor:
    seen = torch.zeros(table.shape[-1], dtype=torch.bool)
    seen[ids] = True
    logits = penalize(table[ids[-2], ids[-1]][None], seen, [], penalty)[0]
    return probabilities(logits, temperature, 1.0, top_k)


@pytest.mark.parametrize(("top_k", "penalty"), [(4, 1.0), (0, 3.0), (5, 2.0)])
def test_sampling_with_top_k_and_a_penalty_draws_from_the_processed_target(top_k, penalty):
    vocab = 10
    tables = torch.Generator().manual_seed(12)
    target_table = 1.5 * torch.randn(vocab, vocab, vocab, generator=tables)
    draft_table = 0.5 * target_table + torch.randn(vocab, vocab, vocab, generator=tables)
    target, draft = TrigramLM(target_table), TrigramLM(draft_table)
    prompt = [3, 7, 3]
    params = SamplingParams(temperature=1.0, max_new_tokens=3, top_k=top_k,
                            repetition_penalty=penalty)
    decoder = SpeculativeDecoder(target, draft, num_speculative_tokens=2)
    n = 3000
    generator = make_generator(5)
    runs = [decoder.generate(prompt, params, generator=generator).token_ids for _ in range(n)]

    first = _processed(target_table, prompt, 1.0, top_k, penalty)
    second = torch.zeros(vocab)
    for x, px in enumerate(first.tolist()):
        if px > 0:
            second += px * _processed(target_table, [*prompt, x], 1.0, top_k, penalty)
    assert goodness_of_fit([r[0] for r in runs], first.double()) > 1e-3
    assert goodness_of_fit([r[1] for r in runs], second.double()) > 1e-3
    if top_k:
        assert len({r[0] for r in runs}) <= top_k
    # The test has power: without the processing, the target's own samples fail it.
    plain = probabilities(target_table[prompt[-2], prompt[-1]], 1.0)
    naive = torch.multinomial(plain, n, replacement=True, generator=make_generator(6))
    assert goodness_of_fit(naive.tolist(), first.double()) < 1e-3


def _model_dir(directory, generation: dict) -> str:
    """A tiny chat model (printable output, never eos) whose generation_config says
    `generation`, with its draft in `draft/` (the target's first layer)."""
    tokenizer = byte_tokenizer()
    draft, target = stacked_pair(eps=0.3, seed=5, vocab_size=BYTE_VOCAB_SIZE, logit_scale=4.0,
                                 draft_layers=1, extra_layers=1)
    printable_only(target, tokenizer)
    printable_only(draft, tokenizer)
    save_model(directory, target, tokenizer)
    save_model(directory / "draft", draft, tokenizer)
    path = directory / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **generation}))
    return str(directory)


async def _answer(path: str, params: dict) -> str:
    """The engine's answer, assisted by the draft (k = 3) as `backend: hf` runs it."""
    backend = HFBackend(path, draft_path=f"{path}/draft", num_speculative_tokens=3,
                        device="cpu", dtype="float32")
    try:
        events = [e async for e in backend.stream([ChatMessage("user", "Hello there")], params)]
    finally:
        await backend.aclose()
    assert isinstance(events[-1], Finished)
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _transformers_greedy(path: str, max_new_tokens: int, **overrides) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hello there"}],
                                        add_generation_prompt=True, return_dict=True,
                                        return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, **overrides)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


async def test_the_engine_applies_the_generation_configs_penalty_and_top_k(tmp_path):
    # A penalty in generation_config: greedy answers are transformers' (which applies it),
    # not the unpenalized ones.
    penalized = await asyncio.to_thread(_model_dir, tmp_path / "penalized",
                                        {"repetition_penalty": PENALTY})
    want = await asyncio.to_thread(_transformers_greedy, penalized, 40)
    unpenalized = await asyncio.to_thread(_transformers_greedy, penalized, 40,
                                          repetition_penalty=1.0)
    assert want != unpenalized
    assert await _answer(penalized, {"max_tokens": 40}) == want

    # top_k 1 in generation_config: sampling (its default here) can only pick the argmax.
    top1 = await asyncio.to_thread(_model_dir, tmp_path / "top1",
                                   {"do_sample": True, "temperature": 1.0, "top_k": 1})
    greedy = await asyncio.to_thread(_transformers_greedy, top1, 40)
    for seed in (1, 2):
        assert await _answer(top1, {"max_tokens": 40, "seed": seed}) == greedy


def test_only_what_the_generation_config_sets_counts():
    # transformers 4 reads an unset top_k as 50 (and generate samples with it); vLLM takes
    # only the values the file sets (`to_diff_dict`), and so does the engine.
    from transformers import GenerationConfig

    from inference.local.engine import _setting

    class Transformers4Style:  # a file that sets nothing, read by transformers 4
        top_k = 50

        def to_diff_dict(self) -> dict:
            return {}

    assert _setting(Transformers4Style(), "top_k") is None
    assert _setting(GenerationConfig(top_k=20), "top_k") == 20
    assert _setting(None, "top_k") is None
