"""Streaming text from token ids: the local engine writes the text vLLM writes for the same ids.

vLLM (V1, fast tokenizers) detokenizes with `tokenizers.decoders.DecodeStream`, primed with the
prompt's ids: a step whose text would end in U+FFFD (a character whose bytes have not all come)
gives nothing, and what never resolves is never shown. The real tier checks the two engines on
a real server (`tests/vllm_real/test_cross_check.py`); here the same algorithm runs in-process
on many random byte sequences.
"""

from __future__ import annotations

import random

from tokenizers.decoders import DecodeStream

from inference.local.detokenize import IncrementalDetokenizer
from tests.local_models import BYTE_VOCAB_SIZE, byte_tokenizer

PROMPT = "<|user|>Привет\n<|assistant|>"


def vllm_text(tokenizer, prompt_ids: list[int], ids: list[int]) -> str:
    """The answer's text as vLLM's FastIncrementalDetokenizer builds it."""
    stream = DecodeStream(ids=prompt_ids, skip_special_tokens=True)
    return "".join(stream.step(tokenizer._tokenizer, i) or "" for i in ids)


def ours(tokenizer, ids: list[int], steps: list[int]) -> tuple[list[str], str]:
    """The engine's deltas, pushed `steps[i]` ids at a time (as verification steps do)."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    deltas, at = [], 0
    for size in steps:
        deltas.append(detokenizer.push(ids[at:at + size]))
        at += size
    return deltas, "".join(deltas)


def test_an_answer_cut_inside_a_character_ends_before_it():
    tokenizer = byte_tokenizer()
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    ids = tokenizer("ЖёЖ✓", add_special_tokens=False)["input_ids"][:-1]  # ✓ is 3 bytes
    deltas, text = ours(tokenizer, ids, [1] * len(ids))
    assert text == "ЖёЖ" == vllm_text(tokenizer, prompt_ids, ids)
    assert "\ufffd" not in "".join(deltas)


def test_random_byte_sequences_read_as_vllm_reads_them():
    tokenizer = byte_tokenizer()
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    rng = random.Random(13)
    # Uniform bytes: half of them are ≥ 0x80, so characters are completed, cut and broken in
    # every way; specials (<pad>, <s>, </s>) come now and then and are skipped by both.
    differing = []
    for case in range(400):
        ids = [rng.randrange(3, BYTE_VOCAB_SIZE) if rng.random() < 0.9 else rng.randrange(3)
               for _ in range(rng.randint(1, 24))]
        steps = []
        while sum(steps) < len(ids):
            steps.append(min(rng.randint(1, 4), len(ids) - sum(steps)))
        _, text = ours(tokenizer, ids, steps)
        if text != vllm_text(tokenizer, prompt_ids, ids):
            differing.append((case, ids, text))
    assert differing == []
