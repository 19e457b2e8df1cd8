"""`python -m benchmarks.load` at smoke size: every turn completes and the report is whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from benchmarks import load
from tests.databases import base_url
from tests.services import REDIS_URL

pytestmark = pytest.mark.timeout(120)


async def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    server = base_url()
    # Under CI's per-run database name, so that its clean-up would find a leftover.
    prefix = f"{server.database}_bench" if "TEST_DATABASE_URL" in os.environ else "chatmux_bench"
    args = load.parse_args([
        "--preset", "smoke", "--postgres", server.render_as_string(hide_password=False),
        "--db-prefix", prefix, "--redis", REDIS_URL, "--log-dir", str(tmp_path),
        "--json", str(tmp_path / "load.json"),
    ])
    assert (args.users, args.turns, args.flood) == (5, 2, True)
    result = await load.main(args)

    assert result["turns"] == {"total": 10, "completed": 10, "failed": 0, "lost": 0,
                               "late_answers": 0, "stray_notices": 0}
    assert result["answers_delivered"] == 10
    assert result["answers_per_s"] > 0
    for figure in ("question_to_final_s", "question_to_model_s", "model_done_to_final_s"):
        assert all(v is not None and v >= 0 for v in result[figure].values()), figure
    assert result["question_to_final_s"]["p50"] > result["question_to_model_s"]["p50"]
    calls = result["bot_api_calls_per_answer"]
    assert calls["sendMessage"] >= 1 and "getUpdates" not in calls
    assert result["draft_frames_per_answer"]["mean"] >= 1
    db = result["db_per_answer"]
    assert db["transactions"] > 0 and db["commits"] > 0 and db["rows_written"] > 0
    assert db["transactions"] == pytest.approx(db["commits"] + db["rollbacks"])
    assert result["idle_in_transaction_connections"]["samples"] > 0
    assert result["bot_connections"]["max"] >= 1
    assert result["bot_cpu_ms_per_answer"] > 0 and result["bot_peak_rss_mb"] > 20
    assert result["benchmark_cpu_share"] > 0
    assert result["bot_exit_code"] == 0
    assert not {"ERROR", "CRITICAL", "traceback"} & set(result["bot_log"]["levels"])
    assert json.loads((tmp_path / "load.json").read_text())["turns"]["completed"] == 10

    # Nothing is left behind: the database is dropped, the Redis keys deleted.
    conn = await asyncpg.connect(server.set(drivername="postgresql", database="postgres")
                                 .render_as_string(hide_password=False))
    try:
        assert not await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                       result["database"])
    finally:
        await conn.close()
    redis = Redis.from_url(REDIS_URL)
    try:
        assert not [k async for k in redis.scan_iter(f"{result['redis_prefix']}:*")]
    finally:
        await redis.aclose()


async def test_smoke_run_through_two_webhook_replicas(tmp_path: Path) -> None:
    server = base_url()
    prefix = f"{server.database}_bench" if "TEST_DATABASE_URL" in os.environ else "chatmux_bench"
    args = load.parse_args([
        "--preset", "smoke", "--replicas", "2", "--postgres",
        server.render_as_string(hide_password=False), "--db-prefix", prefix,
        "--redis", REDIS_URL, "--log-dir", str(tmp_path),
    ])
    assert args.webhook
    result = await load.main(args)
    assert result["turns"]["completed"] == 10 and result["turns"]["lost"] == 0
    assert result["answers_delivered"] == 10  # each question answered once
    taken = result["webhook_deliveries"]["taken"]
    assert len(taken) == 2 and all(n > 0 for n in taken)  # both replicas did work
    assert "getUpdates" not in result["bot_api_calls_per_answer"]
    assert result["bot_exit_code"] == 0
    assert not {"ERROR", "CRITICAL", "traceback"} & set(result["bot_log"]["levels"])
