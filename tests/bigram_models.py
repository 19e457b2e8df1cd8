"""Tiny Llama models whose greedy output is written in advance (offline, deterministic).

A one-layer Llama whose attention and MLP add nothing is a bigram model: the last hidden state
is the current token's embedding, so the next token depends on the current one only. With
one-hot embeddings and an LM head that maps each token to its successor, greedy decoding
follows a cycle of bytes chosen here, e.g. the UTF-8 bytes of "Жё" (2 bytes per character),
so a test knows exactly where an answer is cut inside a character or stops.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from tests.local_models import (
    EOS_ID,
    build_llama,
    byte_tokenizer,
    llama_config,
    save_model,
)

HIDDEN = 320  # ≥ the vocabulary: one dimension per token


def bigram_model_dir(directory: Path, cycle: str, *, after: str = ">",
                     stop: str | None = None, think: bool = False,
                     think_special: bool = False) -> Path:
    """A saved chat model (byte tokenizer, its chat template) that answers `cycle` over and
    over: the template's last byte (`after`) leads to the cycle's first byte, and each byte
    of the cycle to the next. With `stop`, the cycle's last byte leads to that token instead,
    so every answer is `cycle` once, then `stop`: "</s>" (eos), or an ordinary token, then
    made one of the model's eos tokens in its generation_config. With `think`, the tokenizer
    has the added tokens `<think>` and `</think>` (see `byte_tokenizer`), and `cycle` may
    write them: each is one token."""
    tokenizer = byte_tokenizer(think=think, think_special=think_special)
    vocab = len(tokenizer)  # BYTE_VOCAB_SIZE, plus the two markers with `think`
    ids = tokenizer(after + cycle, add_special_tokens=False)["input_ids"]
    if len(set(ids)) != len(ids):
        raise ValueError(f"each token of {after + cycle!r} must have one successor")
    follows = dict(itertools.pairwise(ids))
    follows[ids[-1]] = ids[1] if stop is None else tokenizer.convert_tokens_to_ids(stop)
    config = llama_config(vocab_size=vocab, hidden_size=HIDDEN, layers=1, heads=2,
                          max_positions=512)
    model = build_llama(config, seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(vocab, HIDDEN))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = torch.zeros(vocab, HIDDEN)
        for current, following in follows.items():
            head[following, current] = 1.0
        model.lm_head.weight.copy_(head)
    if stop is not None and stop != tokenizer.eos_token:
        model.generation_config.eos_token_id = [EOS_ID, follows[ids[-1]]]
    return save_model(directory, model, tokenizer)


# What `thinking_model_dir` answers: every token of `<think>`, the reasoning, `</think>` and the
# answer is distinct (one successor each).
THOUGHT = "Quick math"
ANSWER = "YES-42."


def thinking_model_dir(directory: Path, *, think_special: bool = False) -> Path:
    """A reasoning model: to any prompt, `<think>` THOUGHT `</think>` ANSWER, then eos — the
    markers single tokens, as vLLM's reasoning parsers (`deepseek_r1`) need them."""
    return bigram_model_dir(directory, f"<think>{THOUGHT}</think>{ANSWER}", stop="</s>",
                            think=True, think_special=think_special)
