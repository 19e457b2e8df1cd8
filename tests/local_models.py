"""Tiny randomly initialised Llama models and a byte-level tokenizer, built in code (offline).

Used by the local-engine tests and `benchmarks.speculative`. Every builder is deterministic.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<s>", "</s>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
BYTE_VOCAB_SIZE = len(SPECIALS) + 256
# Reasoning markers as single added tokens after the bytes (ids 259 and 260), as in DeepSeek-R1
# and Qwen3: vLLM's reasoning parsers look them up in the vocabulary. Not special, as there:
# detokenized text keeps them (a special token is dropped by `skip_special_tokens`).
THINK_TOKENS = ("<think>", "</think>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def llama_config(
    *,
    vocab_size: int = 96,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 256,
    eos_token_id: int | None = EOS_ID,
    initializer_range: float = 0.02,
) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=BOS_ID,
        eos_token_id=eos_token_id,
        pad_token_id=PAD_ID,
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )


def build_llama(config: LlamaConfig, *, seed: int, logit_scale: float = 1.0) -> LlamaForCausalLM:
    """A randomly initialised model; `logit_scale` multiplies the LM head (sharper outputs)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(logit_scale)
    return model.eval()


def stacked_pair(
    *,
    eps: float,
    draft_layers: int = 1,
    extra_layers: int = 2,
    seed: int = 0,
    logit_scale: float = 1.0,
    **config: Any,
) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """(draft, target): the target is the draft plus `extra_layers` layers on top whose residual
    branches (attention `o_proj`, MLP `down_proj`) are scaled by `eps`.

    At eps = 0 the two compute the same function; a larger eps makes them disagree more.
    """
    target = build_llama(
        llama_config(layers=draft_layers + extra_layers, **config), seed=seed,
        logit_scale=logit_scale,
    )
    with torch.no_grad():
        for layer in target.model.layers[draft_layers:]:
            layer.self_attn.o_proj.weight.mul_(eps)
            layer.mlp.down_proj.weight.mul_(eps)
    draft = build_llama(llama_config(layers=draft_layers, **config), seed=seed)
    state = {
        name: tensor
        for name, tensor in target.state_dict().items()
        if not name.startswith("model.layers.") or int(name.split(".")[2]) < draft_layers
    }
    draft.load_state_dict(state)
    return draft, target


def identical_draft(target: LlamaForCausalLM) -> LlamaForCausalLM:
    """A separate copy of the target (same weights)."""
    return copy.deepcopy(target)


def disagreeing_draft(target: LlamaForCausalLM) -> LlamaForCausalLM:
    """The target with its LM head rows rotated by one: the draft's logit for token v is the
    target's for v + 1, so its argmax is always the target's argmax − 1 (mod V)."""
    draft = copy.deepcopy(target)
    with torch.no_grad():
        draft.lm_head.weight.copy_(torch.roll(target.lm_head.weight, shifts=-1, dims=0))
    return draft


def byte_tokenizer(*, chat_template: bool = True, think: bool = False,
                   think_special: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer without merges: one token per UTF-8 byte, plus 3 specials; with
    `think`, `THINK_TOKENS` too (`think_special`: added as special tokens)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate([*SPECIALS, *alphabet])}
    inner = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    inner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    inner.decoder = decoders.ByteLevel()
    inner.add_special_tokens(list(SPECIALS))
    if think:
        markers = [AddedToken(t, special=think_special, normalized=False) for t in THINK_TOKENS]
        inner.add_tokens(markers)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=inner, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_model(
    directory: Path, model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast | None = None,
) -> Path:
    """`save_pretrained` the model (and tokenizer) into `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def chat_model_dir(
    directory: Path, *, seed: int = 0, layers: int = 2, max_positions: int = 256,
    chat_template: bool = True,
) -> Path:
    """A saved tiny chat model over the byte tokenizer, ready for `from_pretrained`."""
    config = llama_config(
        vocab_size=BYTE_VOCAB_SIZE, layers=layers, max_positions=max_positions,
    )
    model = build_llama(config, seed=seed, logit_scale=4.0)
    return save_model(directory, model, byte_tokenizer(chat_template=chat_template))


def printable_only(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    """Zero the LM-head rows of every token but printable ASCII, space and newline: the rest
    (specials and EOS included) get logit 0, below the best printable one, so greedy decoding
    writes readable characters and runs to max_tokens."""
    keep = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(chr(b))[0])
            for b in (10, *range(32, 127))]
    mask = torch.zeros(model.lm_head.weight.shape[0], dtype=torch.bool)
    mask[keep] = True
    with torch.no_grad():
        model.lm_head.weight[~mask] = 0.0


def vllm_pair(directory: Path, *, eps: float = 0.3, seed: int = 0) -> tuple[Path, Path]:
    """(target dir, draft dir) that real vLLM's CPU build serves: head_dim 64 (its attention
    kernels reject 16), 4096 positions, the byte tokenizer with the chat template, printable
    output (see `printable_only`); the draft is the target's first layer (see
    `stacked_pair`)."""
    tokenizer = byte_tokenizer()
    draft, target = stacked_pair(
        eps=eps, draft_layers=1, extra_layers=1, seed=seed, logit_scale=4.0,
        vocab_size=BYTE_VOCAB_SIZE, hidden_size=128, heads=2, max_positions=4096,
    )
    printable_only(target, tokenizer)
    printable_only(draft, tokenizer)
    return (save_model(directory / "target", target, tokenizer),
            save_model(directory / "draft", draft, tokenizer))
