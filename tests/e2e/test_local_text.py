"""What a `backend: hf` answer reads like, byte for byte: the text vLLM would show for the same
tokens (see `tests/vllm_real/test_cross_check.py`, which checks it against real vLLM)."""

from __future__ import annotations

import pytest

from tests.bigram_models import bigram_model_dir
from tests.e2e.helpers import rows
from tests.harness import running_bot

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
