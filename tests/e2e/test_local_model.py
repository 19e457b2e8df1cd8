"""A `backend: hf` model answers in the bot: our assisted decoding, streamed to Telegram,
its statistics stored with the answer and added up in /models."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import rows
from tests.harness import running_bot
from tests.local_models import chat_model_dir

PRIVATE = 1001
ADMIN = 777
K = 4


@pytest.fixture(scope="module")
def local_models(tmp_path_factory):
    """A tiny chat model and, as its draft, an identical copy (everything is accepted)."""
    root = tmp_path_factory.mktemp("local-models")
    return chat_model_dir(root / "target", seed=3), chat_model_dir(root / "draft", seed=3)


def hf_entry(target, draft) -> dict:
    return {"backend": "hf", "base_url": None, "model": "", "api_key_env": None,
            "path": str(target), "draft_path": str(draft), "num_speculative_tokens": K,
            "device": "cpu", "params": {"temperature": 0, "max_tokens": 30},
            "timeouts": {"connect": 2, "first_token": 60, "total": 120}}


async def test_a_local_model_answers_with_assisted_decoding(
    monkeypatch, tmp_path, telegram, models, database_url, redis_prefix, db, local_models
):
    target, draft = local_models
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_overrides={"alpha": hf_entry(target, draft)},
                           ADMIN_IDS=str(ADMIN)):
        telegram.user_sends("Hello, local model", chat_id=PRIVATE)
        [answer] = await telegram.wait_for_bot_messages(PRIVATE, 1, timeout=90)
        assert answer.text.strip()
        assert models.chat_requests() == []  # nothing went to an HTTP model

        [row] = await rows(db, "SELECT * FROM message WHERE role = 'assistant'", 1)
        assert row["model_id"] == "alpha" and row["served_model"] == "target"
        assert row["status"] == "complete" and row["prompt_tokens"] > 0
        stats = row["decoding"]
        assert stats["generated_tokens"] == row["completion_tokens"] > 0
        # An identical draft: every drafted token is accepted.
        assert stats["drafted_tokens"] > 0
        assert stats["accepted_tokens"] == stats["drafted_tokens"]
        assert stats["acceptance_rate"] == 1.0
        assert stats["generated_tokens"] == stats["verify_steps"] + stats["accepted_tokens"]
        assert 1 < stats["mean_acceptance_length"] <= K + 1

        telegram.user_sends("/models", chat_id=ADMIN)
        [report] = await telegram.wait_for_bot_messages(ADMIN, 1, timeout=30)
        assert f"assisted decoding: draft {draft}, k={K}" in report.text
        assert f"local:{target}: ready" in report.text
        assert "acceptance 100%" in report.text
