"""Admin `/export`: the dump arrives as a document that `datasets` and TRL accept."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from trl.data_utils import is_conversational

from storage.db import create_engine, create_sessionmaker
from storage.models import ModelOverride
from tests.harness import running_bot
from tests.integration.export_scenario import store_scenario

ADMIN = 777
USER = 888
# The scenario's third model: gone from the catalogue, its export policy kept.
RETIRED = {"retired_models": [{"id": "gamma", "data_license": "mit"}]}


@pytest.fixture
async def stored(database_url):
    return await store_scenario(database_url)


async def exchange(telegram, text: str, chat_id: int = ADMIN, *, count: int = 1):
    before = len(telegram.bot_messages(chat_id))
    telegram.user_sends(text, chat_id=chat_id)
    messages = await telegram.wait_for_bot_messages(chat_id, before + count, timeout=60)
    return messages[before:]


async def final(telegram, chat_id: int, predicate):
    """The bot's message (sent or edited) that satisfies `predicate`."""
    return await telegram.wait_for(
        lambda: next((m for m in telegram.bot_messages(chat_id) if predicate(m)), None),
        timeout=60)


async def test_export_sends_parquet_and_jsonl_documents(
    stored, monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           catalogue_top=RETIRED, ADMIN_IDS=str(ADMIN), EXPORT_SALT="pepper"):
        await exchange(telegram, "/export dpo")
        doc = await final(telegram, ADMIN, lambda m: m.document is not None)
        assert doc.document["file_name"].endswith(".parquet")
        assert doc.caption.startswith("dpo: 5 rows from")
        assert doc.caption.endswith("; left out: 1 duplicates")
        table = pq.read_table(io.BytesIO(doc.document["content"]))
        rows = table.to_pylist()
        assert len(rows) == 5 and all(is_conversational(r) for r in rows)
        assert ["mit", "unknown"] in [r["licenses"] for r in rows]  # beta has no licence
        # The dataset card follows the dump.
        card = await final(telegram, ADMIN, lambda m: m.document is not None
                           and m.document["file_name"] == "README.md")
        text = card.document["content"].decode()
        assert text.startswith("---\n") and "num_examples: 5" in text
        # The progress message goes once the file is there.
        await telegram.wait_for(lambda: not [
            m for m in telegram.bot_messages(ADMIN) if (m.text or "").startswith("⏳")],
            timeout=10)

        await exchange(telegram, "/export arena 30 jsonl")
        doc = await final(telegram, ADMIN, lambda m: m.document is not None
                          and m.document["file_name"].endswith(".jsonl.gz"))
        lines = gzip.decompress(doc.document["content"]).decode().splitlines()
        battles = [json.loads(line) for line in lines]
        # Ties are battles too (LMSYS releases and /leaderboard count them).
        assert sorted(b["winner"] for b in battles) == ["model_a", "model_b", "tie",
                                                        "tie (bothbad)"]
        assert "since" in doc.caption

        # `near`: rows whose prompt nearly repeats an earlier row's go, and are counted.
        await exchange(telegram, "/export dpo near jsonl")
        doc = await final(telegram, ADMIN, lambda m: m.document is not None
                          and m.document["file_name"].startswith("chatmux-dpo")
                          and m.document["file_name"].endswith(".jsonl.gz"))
        assert doc.caption.startswith("dpo: 4 rows from")
        assert "1 near-duplicate prompts" in doc.caption
        lines = gzip.decompress(doc.document["content"]).decode().splitlines()
        assert len(lines) == 4
        # A model whose terms keep its answers out (here: gamma, Bob's battles).
        engine = create_engine(database_url)
        async with create_sessionmaker(engine).begin() as session:
            await session.execute(sa.insert(ModelOverride).values(
                model_id="gamma", spec={"exportable": False}, enabled=False, removed=True))
        await engine.dispose()
        await exchange(telegram, "/export arena jsonl")
        doc = await final(telegram, ADMIN, lambda m: m.document is not None
                          and "restricted" in (m.caption or ""))
        assert doc.caption.startswith("arena: 1 rows from 4 judgements; left out: 3 "
                                      "restricted models")

        # Anyone else: the command does not exist.
        (reply,) = await exchange(telegram, "/export dpo", USER)
        assert reply.text == "I don't know that command. See /help."
        (reply,) = await exchange(telegram, "/export csv")
        assert reply.text.startswith("⚠️ Usage: /export <dpo|kto|arena|sft>")


async def test_a_dump_over_the_upload_limit_gets_the_cli_command(
    stored, monkeypatch, tmp_path, telegram, models, database_url, redis_prefix
):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN), TELEGRAM_UPLOAD_LIMIT="200"):
        await exchange(telegram, "/export sft 7")
        refusal = await final(telegram, ADMIN, lambda m: "over the" in (m.text or ""))
        assert "chatmux export --format sft --since " in refusal.text
        assert refusal.text.endswith("--out sft.parquet")
        assert not [m for m in telegram.bot_messages(ADMIN) if m.document is not None]


async def test_nothing_to_export(monkeypatch, tmp_path, telegram, models, database_url,
                                 redis_prefix):
    async with running_bot(monkeypatch, tmp_path, telegram, models, database_url, redis_prefix,
                           ADMIN_IDS=str(ADMIN)):
        await exchange(telegram, "/export kto")
        reply = await final(telegram, ADMIN, lambda m: "nothing" in (m.text or ""))
        assert reply.text == "ℹ️ nothing to export: no kto rows"
