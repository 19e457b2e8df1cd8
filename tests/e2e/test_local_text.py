"""What a `backend: hf` answer reads like, byte for byte: the text vLLM would show for the same
model and tokens (`tests/vllm_real/test_cross_check.py` checks it against real vLLM)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.bigram_models import bigram_model_dir
from tests.e2e.helpers import rows
from tests.harness import running_bot
from tests.local_models import BYTE_VOCAB_SIZE, byte_tokenizer, save_model, stacked_pair

PRIVATE = 1001
LENGTH_NOTE = "… (the model reached its length limit)"


@pytest.fixture(scope="module")
def zhyo(tmp_path_factory):
    """A model that answers "ЖёЖёЖё…" (two bytes per character) until max_tokens."""
    return bigram_model_dir(tmp_path_factory.mktemp("bigram") / "zhyo", "Жё")


@pytest.fixture(scope="module")
def done_bar(tmp_path_factory):
    """A model that answers "Done" then "|", an ordinary token its generation_config lists
    among its eos tokens (as some models end a turn)."""
    return bigram_model_dir(tmp_path_factory.mktemp("bigram") / "done", "Done", stop="|")


def hf_entry(target, *, max_tokens: int) -> dict:
    return {"backend": "hf", "base_url": None, "model": "", "api_key_env": None,
            "path": str(target), "draft_path": str(target), "num_speculative_tokens": 3,
            "device": "cpu", "params": {"temperature": 0, "max_tokens": max_tokens},
            "timeouts": {"connect": 2, "first_token": 60, "total": 120}}


async def test_an_answer_cut_inside_a_character_shows_no_replacement_character(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db, zhyo
):
    # 7 tokens: Ж, ё, Ж and the first byte of ё. The unfinished character is not shown as
    # "�" (what decoding all 7 bytes gives); vLLM, serving the same model, leaves it out too.
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": hf_entry(zhyo, max_tokens=7)}):
        telegram.user_sends("Hello", chat_id=PRIVATE)
        [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=90)
        assert answer.text == f"ЖёЖ\n\n{LENGTH_NOTE}"
        [row] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
        assert row["content"] == "ЖёЖ" and row["completion_tokens"] == 7
        assert row["finish_reason"] == "length"


async def test_the_token_that_ends_an_answer_is_not_part_of_it(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db, done_bar
):
    # "|" is no special token, so decoding would show it; it stops the answer, so (as in
    # vLLM, which never shows the token that stopped a request) it is counted, not shown.
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": hf_entry(done_bar, max_tokens=30)}):
        telegram.user_sends("Are you done?", chat_id=PRIVATE)
        [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=90)
        assert answer.text == "Done"
        [row] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
        assert row["content"] == "Done" and row["completion_tokens"] == 5
        assert row["finish_reason"] == "stop"


def _letters_only(model, tokenizer) -> None:
    """Only a–z can win (plain text whatever the bot's formatting does with punctuation)."""
    keep = [tokenizer.convert_tokens_to_ids(chr(c)) for c in range(ord("a"), ord("z") + 1)]
    mask = torch.zeros(model.lm_head.weight.shape[0], dtype=torch.bool)
    mask[keep] = True
    with torch.no_grad():
        model.lm_head.weight[~mask] = 0.0


@pytest.fixture(scope="module")
def penalized(tmp_path_factory):
    """A tiny target and its draft; the target's generation_config sets repetition_penalty
    1.3, as e.g. Qwen2.5-Instruct's does (1.05)."""
    root = tmp_path_factory.mktemp("penalized")
    tokenizer = byte_tokenizer()
    draft, target = stacked_pair(eps=0.3, seed=6, vocab_size=BYTE_VOCAB_SIZE, logit_scale=4.0,
                                 draft_layers=1, extra_layers=1)
    for model in (draft, target):
        _letters_only(model, tokenizer)
    target.generation_config.repetition_penalty = 1.3
    return save_model(root / "target", target, tokenizer), save_model(root / "draft", draft)


def _greedy(target, messages: list[dict], **overrides) -> str:
    """transformers' greedy answer (it applies the generation_config's penalty)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                        return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=30, **overrides)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


async def test_the_models_repetition_penalty_shapes_its_answer(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db, penalized
):
    # vLLM serving this model applies the penalty to every request (greedy ones too), and so
    # does transformers; chatmux's engine ignored it and answered something else.
    target, draft = penalized
    entry = {**hf_entry(target, max_tokens=30), "draft_path": str(draft),
             "system_prompt": "You guide people along rivers."}
    question = "Tell me about rivers"
    messages = [{"role": "system", "content": entry["system_prompt"]},
                {"role": "user", "content": question}]
    want = _greedy(target, messages)
    assert want != _greedy(target, messages, repetition_penalty=1.0)
    assert json.loads((target / "generation_config.json").read_text())[
        "repetition_penalty"] == 1.3
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": entry}):
        telegram.user_sends(question, chat_id=PRIVATE)
        [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=90)
        assert answer.text == f"{want}\n\n{LENGTH_NOTE}"
        [row] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
        assert row["content"] == want
        assert row["decoding"]["drafted_tokens"] > 0
