"""`chatmux export`: every format from a known history, loaded back with `datasets`."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from trl.data_utils import is_conversational

from storage.db import create_engine, create_sessionmaker
from storage.exports import ExportOptions, ExportOptionsError, export
from storage.exports.writers import SCHEMAS
from tests.integration.export_scenario import ALICE, BOB, SYSTEM, store_scenario

PRIVATE = [str(ALICE.telegram_id), ALICE.username, ALICE.first_name,
           str(BOB.telegram_id), BOB.username, BOB.first_name]


@pytest.fixture
async def stored(database_url):
    scenario = await store_scenario(database_url)
    engine = create_engine(database_url)
    yield create_sessionmaker(engine), scenario
    await engine.dispose()


def load(path: Path, cache: Path) -> list[dict]:
    kind = "parquet" if path.suffix == ".parquet" else "json"
    dataset = load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))
    return list(dataset)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


async def run(stored, tmp_path: Path, name: str, **options) -> tuple[list[dict], object]:
    sessionmaker, _ = stored
    path = tmp_path / name
    result = await export(sessionmaker, ExportOptions(salt=b"pepper", **options), path)
    assert result.path == path and path.stat().st_size > 0
    if path.suffix == ".parquet":
        assert pq.read_schema(path).names == SCHEMAS[options["format"]].names
    rows = load(path, tmp_path / "hf-cache")
    assert len(rows) == result.rows
    return rows, result


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "parquet"])
async def test_dpo_pairs_from_battles_regenerations_and_edits(stored, tmp_path, suffix):
    rows, result = await run(stored, tmp_path, f"dpo.{suffix}", format="dpo")
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        assert is_conversational(row)
        assert set(row) == set(SCHEMAS["dpo"].names)
        by_source.setdefault(row["source"], []).append(row)
    assert result.duplicates == 1  # the "2+2?" pair was stored twice
    assert {k: len(v) for k, v in by_source.items()} == {"arena": 2, "regenerate": 2, "edit": 1}

    borscht = next(r for r in by_source["arena"] if r["chosen_model"] == "beta")
    # The rivals had different system prompts, so the shared prompt carries none.
    assert borscht["prompt"] == [user(rows_q1()), bot("Hello! How can I help?"),
                                 user("Как сварить борщ?")]
    assert borscht["chosen"] == [bot("Свёкла, капуста, бульон.")]
    assert borscht["rejected"] == [bot("Не знаю.")]
    assert (borscht["rejected_model"], borscht["strength"], borscht["margin"]) == (
        "alpha", "much_better", 3.0)
    assert borscht["language"] == "ru"

    regen = next(r for r in by_source["regenerate"] if r["chosen_model"] == "alpha")
    assert regen["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert regen["prompt"][-2:] == [bot("Свёкла, капуста, бульон."),
                                    user("And how long does it cook?")]
    assert (regen["chosen"], regen["rejected"]) == ([bot("About two hours.")],
                                                    [bot("Five minutes.")])

    (edit,) = by_source["edit"]
    assert edit["chosen"] == [bot("About two hours; add the beets in the last 20 minutes.")]
    assert edit["rejected"] == [bot("About two hours.")]
    assert (edit["chosen_model"], edit["rejected_model"], edit["margin"]) == (
        "human", "alpha", 2.0)
    assert edit["prompt"] == regen["prompt"]
    # Conversation ids are salted hashes, the same for rows of one conversation.
    assert borscht["conversation_id"] == regen["conversation_id"] == edit["conversation_id"]
    assert len(borscht["conversation_id"]) == 20


def rows_q1() -> str:
    return ("Hi! Mail me at alice.w@example.com or call +7 912 345-67-89, "
            "card 4111 1111 1111 1111.")


async def test_dpo_filters(stored, tmp_path):
    rows, _ = await run(stored, tmp_path, "a.jsonl", format="dpo", models=frozenset(
        {"alpha", "beta"}))
    assert sorted(r["source"] for r in rows) == ["arena", "edit", "regenerate"]
    rows, _ = await run(stored, tmp_path, "b.jsonl", format="dpo", sources=("arena",),
                        min_strength="better")
    assert [r["chosen_model"] for r in rows] == ["beta"]  # slightly_better is left out
    future = datetime.now(UTC) + timedelta(days=1)
    sessionmaker, _ = stored
    result = await export(sessionmaker, ExportOptions(format="dpo", since=future),
                          tmp_path / "c.parquet")
    assert result.rows == 0 and not (tmp_path / "c.parquet").exists()
    with pytest.raises(ExportOptionsError, match="include-ties"):
        ExportOptions(format="dpo", include_ties=True)
    with pytest.raises(ExportOptionsError, match="likes does not apply to dpo"):
        ExportOptions(format="dpo", sources=("likes",))


async def test_kto_labels_from_votes_and_arena(stored, tmp_path):
    rows, result = await run(stored, tmp_path, "kto.parquet", format="kto")
    assert all(is_conversational(r) and isinstance(r["label"], bool) for r in rows)
    got = sorted((r["completion"][0]["content"], r["label"]) for r in rows)
    # The cut, empty and undelivered answers are not exported although they were liked;
    # "2+2?" is stored twice.
    assert got == [("4", True), ("5", False), ("About two hours.", True),
                   ("Five minutes.", False), ("Hello! How can I help?", True)]
    assert result.duplicates == 2
    rows, _ = await run(stored, tmp_path, "kto1.jsonl", format="kto", sources=("arena",))
    # Without --include-ties a kto dump labels only decided battles' answers.
    assert not any("tie" in r["completion"][0]["content"] or "bothbad" in
                   r["completion"][0]["content"] for r in rows)
    rows, _ = await run(stored, tmp_path, "kto2.jsonl", format="kto", sources=("arena",),
                        include_ties=True)
    labels = sorted((r["completion"][0]["content"], r["label"]) for r in rows)
    assert labels == [("bothbad answer A", False), ("bothbad answer B", False),
                      ("slight answer A", True), ("slight answer B", False),
                      ("tie answer A", True), ("tie answer B", True),
                      ("Не знаю.", False), ("Свёкла, капуста, бульон.", True)]


async def test_arena_battles_in_the_lmsys_schema(stored, tmp_path):
    rows, _ = await run(stored, tmp_path, "arena.jsonl", format="arena", include_ties=False)
    assert sorted(r["winner"] for r in rows) == ["model_a", "model_b"]
    rows, _ = await run(stored, tmp_path, "arena.parquet", format="arena")  # ties by default
    by_winner = {r["winner"]: r for r in rows}
    assert set(by_winner) == {"model_a", "model_b", "tie", "tie (bothbad)"}
    borscht = by_winner["model_b"]
    assert (borscht["model_a"], borscht["model_b"], borscht["turn"], borscht["anony"]) == (
        "alpha", "beta", 2, True)
    assert borscht["conversation_a"][-2:] == [user("Как сварить борщ?"), bot("Не знаю.")]
    assert borscht["conversation_b"][-1] == bot("Свёкла, капуста, бульон.")
    assert borscht["judge"].startswith("arena_user_")
    assert by_winner["tie"]["judge"] == by_winner["model_a"]["judge"] != borscht["judge"]
    assert abs(borscht["tstamp"] - datetime.now(UTC).timestamp()) < 600
    # The same salt gives the same judge hash in another dump; another salt does not.
    sessionmaker, _ = stored
    other = tmp_path / "other.jsonl"
    await export(sessionmaker, ExportOptions(format="arena", salt=b"other"), other)
    judges = {json.loads(line)["judge"] for line in other.read_text().splitlines()}
    assert borscht["judge"] not in judges


async def test_sft_keeps_liked_dialogs_and_edits(stored, tmp_path):
    rows, result = await run(stored, tmp_path, "sft.jsonl.gz", format="sft")
    assert all(is_conversational(r) for r in rows)
    endings = sorted((r["source"], r["messages"][-1]["content"]) for r in rows)
    assert endings == [("edit", "About two hours; add the beets in the last 20 minutes."),
                       ("likes", "4"), ("likes", "About two hours.")]
    assert result.duplicates == 1
    liked = next(r for r in rows if r["messages"][-1]["content"] == "About two hours.")
    # The liked first answer is inside this longer liked dialog, so it has no row of its own;
    # the disliked sibling is not part of the dialog.
    contents = [m["content"] for m in liked["messages"]]
    assert "Hello! How can I help?" in contents and "Five minutes." not in contents
    assert liked["messages"][0] == {"role": "system", "content": SYSTEM}


@pytest.mark.parametrize("fmt", ["dpo", "kto", "arena", "sft"])
async def test_no_identities_in_any_dump_and_pii_scrubbed_on_request(stored, tmp_path, fmt):
    ties = fmt in ("arena", "kto")
    path = tmp_path / f"{fmt}.jsonl"
    sessionmaker, _ = stored
    await export(sessionmaker, ExportOptions(format=fmt, include_ties=ties), path)
    text = path.read_text(encoding="utf-8")
    for secret in PRIVATE:
        assert secret not in text
    scrubbed = tmp_path / f"{fmt}-scrubbed.jsonl"
    await export(sessionmaker, ExportOptions(format=fmt, include_ties=ties, scrub_pii=True),
                 scrubbed)
    clean = scrubbed.read_text(encoding="utf-8")
    # Every format has a row whose context holds the first question, with its PII.
    assert "alice.w@example.com" in text and "912 345-67-89" in text
    assert "alice.w@example.com" not in clean and "4111" not in clean
    assert "Mail me at [EMAIL] or call [PHONE], card [CARD]." in clean


CLI_CATALOGUE = """
models:
  - {id: beta, base_url: "http://127.0.0.1:1/v1", model: b, data_license: cc-by-4.0}
default_model: beta
retired_models:
  - {id: gamma, exportable: false, data_license: "Gamma API terms"}
"""


def test_cli_export_writes_a_loadable_file(database_url, tmp_path):
    asyncio.run(store_scenario(database_url))
    (tmp_path / "models.yaml").write_text(CLI_CATALOGUE, encoding="utf-8")
    out = tmp_path / "battles.jsonl.gz"
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url, "EXPORT_SALT": "s3cret",
           # the code under test, also from a checkout other than the installed one
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    command = [sys.executable, "-m", "bot", "export", "--format", "arena", "--out", str(out),
               "--include-ties", "--models", "beta,gamma"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=env)
    # gamma is retired and restricted: its battles stay out unless asked for.
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no arena rows match these options; nothing written; "
                                    "left out: 3 rows with answers of restricted or unknown "
                                    "models (--include-restricted keeps them)")
    result = subprocess.run([*command, "--include-restricted"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "wrote 3 arena rows" in result.stdout
    assert f"dataset card: {tmp_path / 'README.md'}" in result.stdout
    with gzip.open(out, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    assert {(r["model_a"], r["model_b"]) for r in rows} == {("beta", "gamma")}
    assert {tuple(r["licenses"]) for r in rows} == {("Gamma API terms", "cc-by-4.0")}
    assert "s3cret" not in result.stdout + result.stderr

    # Without the catalogue no model's policy is known: say so, unless told to go on.
    (tmp_path / "models.yaml").unlink()
    missing = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env=env)
    assert missing.returncode == 2 and "--include-restricted exports without it" in (
        missing.stderr)
    result = subprocess.run([*command, "--include-restricted"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and "wrote 3 arena rows" in result.stdout
    (tmp_path / "models.yaml").write_text(CLI_CATALOGUE, encoding="utf-8")

    bad = subprocess.run(
        [sys.executable, "-m", "bot", "export", "--format", "dpo",
         "--out", str(tmp_path / "x.csv")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (f"chatmux: {tmp_path / 'x.csv'}: the file name must end in "
                                  ".jsonl, .jsonl.gz or .parquet")


async def test_exports_from_sqlite_too(tmp_path):
    from storage.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'chatmux.db'}"
    await upgrade(url)
    await store_scenario(url)
    engine = create_engine(url)
    try:
        for fmt, expected in (("dpo", 5), ("kto", 5), ("arena", 4), ("sft", 3)):
            result = await export(create_sessionmaker(engine), ExportOptions(format=fmt),
                                  tmp_path / f"{fmt}.parquet")
            assert result.rows == expected, fmt
            assert pq.read_table(result.path).num_rows == expected
    finally:
        await engine.dispose()


async def test_near_duplicate_prompts_are_dropped_on_request(stored, tmp_path):
    rows, result = await run(stored, tmp_path, "all.jsonl", format="dpo")
    assert "near_duplicate" not in result.removed  # not asked for: nothing removed
    languages = {r["prompt"][-1]["content"]: r["language"] for r in rows}
    assert languages["Как сварить борщ?"] == "ru"
    assert languages["And how long does it cook?"] == "en"
    assert languages["2+2?"] == "und"  # no letters
    rows, result = await run(stored, tmp_path, "near.jsonl", format="dpo",
                             near_duplicates=0.85)
    # The edit pair's prompt is the dialog the earlier regenerate pair was judged on.
    assert result.removed["near_duplicate"] == 1
    assert sorted(r["source"] for r in rows) == ["arena", "arena", "regenerate", "regenerate"]
    assert result.duplicates == 1  # the exact duplicate is counted as before, not twice


async def test_languages_come_from_the_options(stored, tmp_path):
    rows, _ = await run(stored, tmp_path, "none.jsonl", format="arena", languages=())
    assert {r["language"] for r in rows} == {"und"}
    rows, _ = await run(stored, tmp_path, "ru.jsonl", format="arena", languages=("de", "ru"))
    by_winner = {r["winner"]: r["language"] for r in rows}
    assert by_winner["model_b"] == "ru"  # "Как сварить борщ?"
    assert by_winner["tie"] in ("de", "und")  # English is not a candidate
