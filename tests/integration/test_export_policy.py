"""What may go into a dump: model export policies and licences, users' consent, forgotten
messages, the counts of what was left out, and the dataset card written next to the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml
from datasets import load_dataset

from bot.admin_args import endpoint_spec, split_args
from storage.db import create_engine, create_sessionmaker
from storage.exports import ExportOptions, ExportOptionsError, ModelPolicy, export
from storage.exports.card import MARKER
from storage.models import Message, User
from storage.repositories.admin import AdminRepository
from storage.repositories.conversations import AnswerRecord, ConversationRepository
from storage.repositories.feedback import FeedbackRepository
from storage.repositories.users import TelegramUser, UserRepository
from tests.integration.export_scenario import ALICE, BOB, WINDOW, store_scenario

CAROL = TelegramUser(555000111, username="carol", first_name="Carol", language_code="en")
DAVE = TelegramUser(555000222, username="dave", first_name="Dave", language_code="en")
GROUP = -100777
OPEN = {"alpha": ModelPolicy(True, "apache-2.0"), "beta": ModelPolicy(True, "cc-by-4.0"),
        "gamma": ModelPolicy(True, None)}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
async def stored(db_url):
    """The shared scenario, plus a group chat: Carol asks, `closed` answers; Dave asks on
    and judges an arena battle of `open_a` and `open_b` (won by B)."""
    await store_scenario(db_url)
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    users, convs = UserRepository(sessionmaker), ConversationRepository(sessionmaker)
    feedback = FeedbackRepository(sessionmaker)
    carol, chat = await users.touch(CAROL, GROUP, "group", "Friends")
    dave, _ = await users.touch(DAVE, GROUP, "group", "Friends")
    conversation = await convs.active(chat, carol.id)
    q1 = await convs.add_user_message(conversation.id, carol.id, "Name a colour", GROUP, 5001)
    await convs.add_answer(q1, AnswerRecord("Blue.", "closed", "closed-served"))
    q2 = await convs.add_user_message(conversation.id, dave.id, "And a fruit?", GROUP, 5002)
    a = await convs.add_answer(q2, AnswerRecord("Apple.", "open_a", "a"), origin="arena")
    b = await convs.add_answer(q2, AnswerRecord("Mango.", "open_b", "b"), origin="arena",
                               head="keep")
    battle = await feedback.create_battle(chat_row_id=chat, user_id=dave.id, prompt=q2,
                                          answer_a=a, answer_b=b)
    await feedback.vote_battle(battle.id, dave.id, "b", WINDOW)
    yield sessionmaker
    await engine.dispose()


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    if path.name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


async def dump(sessionmaker, path: Path, **options) -> tuple[list[dict], object]:
    result = await export(sessionmaker, ExportOptions(salt=b"pepper", **options), path)
    rows = read_rows(path)  # no rows: no file
    assert len(rows) == result.rows
    return rows, result


async def set_consent(sessionmaker, telegram_id: int, value: bool | None) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(sa.update(User).where(User.telegram_id == telegram_id)
                              .values(data_consent=value))


def pairs(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["model_a"], r["model_b"]) for r in rows}


ALL_BATTLES = {("alpha", "beta"), ("beta", "gamma"), ("open_a", "open_b")}


async def test_restricted_and_unknown_models_are_left_out_unless_asked(stored, tmp_path):
    policies = {**OPEN, "beta": ModelPolicy(False, "proprietary"), "open_a": ModelPolicy(),
                "open_b": ModelPolicy(True, "mit")}
    # `closed` is in no policy: unknown, so restricted; it is only in the group's context.
    rows, result = await dump(stored, tmp_path / "a.jsonl", format="arena",
                              model_policies=policies)
    assert rows == [] and result.removed == {"restricted_model": 5}

    rows, result = await dump(stored, tmp_path / "b.jsonl", format="arena",
                              model_policies=policies, include_restricted=True)
    assert pairs(rows) == ALL_BATTLES and result.rows == 5 and result.removed == {}
    licences = {(r["model_a"], r["model_b"]): r["licenses"] for r in rows}
    assert licences[("alpha", "beta")] == ["apache-2.0", "proprietary"]
    assert licences[("beta", "gamma")] == ["proprietary", "unknown"]  # gamma: no licence
    # The context's answer counts too: `closed` is unknown, `open_a` has no licence.
    assert licences[("open_a", "open_b")] == ["mit", "unknown"]

    # Only the context is restricted: the row still goes.
    policies = {**OPEN, "closed": ModelPolicy(False, "tos"), "open_a": ModelPolicy(True, "mit"),
                "open_b": ModelPolicy(True, "mit")}
    rows, result = await dump(stored, tmp_path / "c.parquet", format="arena",
                              model_policies=policies)
    assert pairs(rows) == {("alpha", "beta"), ("beta", "gamma")}
    assert result.removed == {"restricted_model": 1}
    rows, _ = await dump(stored, tmp_path / "d.parquet", format="arena",
                         model_policies=policies, include_restricted=True)
    assert {r["model_b"]: r["licenses"] for r in rows}["open_b"] == ["mit", "tos"]

    # No policy source at all (a library caller): everything goes, licences unknown.
    rows, _ = await dump(stored, tmp_path / "e.jsonl", format="arena")
    assert pairs(rows) == ALL_BATTLES and {tuple(r["licenses"]) for r in rows} == {("unknown",)}


async def test_every_format_carries_licenses_and_honours_the_policy(stored, tmp_path):
    policies = {**OPEN, "alpha": ModelPolicy(False, "apache-2.0")}
    for fmt in ("dpo", "kto", "sft"):
        rows, result = await dump(stored, tmp_path / f"{fmt}.jsonl", format=fmt,
                                  model_policies=policies)
        # Alice's conversation has alpha's answers everywhere: none of it goes; Bob's do.
        assert rows and result.removed["restricted_model"] > 0
        assert not [r for r in rows if "apache-2.0" in r["licenses"]], fmt
        assert ["unknown"] in [r["licenses"] for r in rows]  # gamma's
        everything, _ = await dump(stored, tmp_path / f"{fmt}-all.jsonl", format=fmt,
                                   model_policies=policies, include_restricted=True)
        assert len(everything) == len(rows) + result.removed["restricted_model"]
        assert [r for r in everything if "apache-2.0" in r["licenses"]]


async def test_consent_opt_out_and_opt_in(stored, tmp_path):
    await set_consent(stored, BOB.telegram_id, False)
    rows, result = await dump(stored, tmp_path / "a.jsonl", format="arena")
    assert pairs(rows) == {("alpha", "beta"), ("open_a", "open_b")}
    assert result.removed == {"no_consent": 3}  # Bob judged three battles

    # Carol only asked the first question of the group's dialog: her word counts too.
    await set_consent(stored, CAROL.telegram_id, False)
    rows, result = await dump(stored, tmp_path / "b.jsonl", format="arena")
    assert pairs(rows) == {("alpha", "beta")} and result.removed == {"no_consent": 4}

    # Votes: Bob's likes and dislikes are not counted at all.
    rows, result = await dump(stored, tmp_path / "kto.jsonl", format="kto")
    assert {r["model"] for r in rows} == {"alpha"}
    assert result.removed["no_consent"] == 4  # his four votes

    # opt_in: only those who said yes.
    rows, result = await dump(stored, tmp_path / "c.jsonl", format="arena",
                              data_consent="opt_in")
    assert rows == [] and result.removed == {"no_consent": 5}
    await set_consent(stored, ALICE.telegram_id, True)
    await set_consent(stored, BOB.telegram_id, None)  # not asked: out in opt_in mode
    rows, _ = await dump(stored, tmp_path / "d.jsonl", format="arena", data_consent="opt_in")
    assert pairs(rows) == {("alpha", "beta")}
    await set_consent(stored, CAROL.telegram_id, True)
    await set_consent(stored, DAVE.telegram_id, True)
    rows, _ = await dump(stored, tmp_path / "e.jsonl", format="arena", data_consent="opt_in")
    assert pairs(rows) == {("alpha", "beta"), ("open_a", "open_b")}
    with pytest.raises(ExportOptionsError, match="data_consent"):
        ExportOptions(format="arena", data_consent="maybe")  # type: ignore[arg-type]


async def test_rows_with_a_forgotten_message_are_left_out(stored, tmp_path):
    async with stored.begin() as session:  # what "forget me" leaves of Carol's question
        await session.execute(sa.update(Message).where(Message.content == "Name a colour")
                              .values(content="", author_id=None, origin="forgotten"))
    rows, result = await dump(stored, tmp_path / "a.jsonl", format="arena")
    assert pairs(rows) == {("alpha", "beta"), ("beta", "gamma")}
    assert result.removed == {"forgotten": 1}


async def test_removed_counts_images_and_duplicates(stored, tmp_path):
    _, result = await dump(stored, tmp_path / "dpo.jsonl", format="dpo")
    assert result.removed == {"duplicate": 1} == {"duplicate": result.duplicates}
    async with stored.begin() as session:  # a photo in the group's first question
        await session.execute(sa.update(Message).where(Message.content == "Name a colour")
                              .values(attachments=[{"kind": "image", "file_id": "x"}]))
    rows, result = await dump(stored, tmp_path / "arena.jsonl", format="arena")
    assert result.removed == {"images": 1} and len(rows) == 4
    await set_consent(stored, DAVE.telegram_id, False)  # counted once, under the first reason
    _, result = await dump(stored, tmp_path / "arena2.jsonl", format="arena")
    assert result.removed == {"no_consent": 1}


def front_matter(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("fmt", ["arena", "dpo", "kto", "sft"])
async def test_the_dataset_card_loads_the_folder(stored, tmp_path, fmt, suffix):
    folder = tmp_path / f"{fmt}-{suffix}"
    folder.mkdir()
    await set_consent(stored, DAVE.telegram_id, False)
    rows, result = await dump(stored, folder / f"{fmt}.{suffix}", format=fmt,
                              model_policies={**OPEN, "closed": ModelPolicy(),
                                              "open_a": ModelPolicy(), "open_b": ModelPolicy()})
    assert result.card == folder / "README.md"
    meta = front_matter(result.card)
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": f"{fmt}.{suffix}"}]}]
    assert meta["dataset_info"]["splits"] == [{"name": "train", "num_examples": len(rows)}]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(rows[0])
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"]
    languages = {r["language"] for r in rows}
    assert set(meta["language"]) == {{"English": "en", "Russian": "ru"}.get(x, x)
                                     for x in languages} - {"unknown", "und"}
    assert meta["license"] in ("other", "apache-2.0", "unknown")
    text = result.card.read_text(encoding="utf-8")
    assert MARKER in text and "data_consent: opt_out" in text
    assert all(f"- {key}: {n:,}" in text for key, n in result.removed.items())
    assert fmt != "arena" or result.removed["no_consent"] == 1  # Dave's battle

    dataset = load_dataset(str(folder), split="train",
                           cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.num_rows == result.rows == len(rows)
    assert dataset.column_names == list(rows[0])
    assert dataset[0]["licenses"] == rows[0]["licenses"]


async def test_the_card_counts_and_licence(stored, tmp_path):
    policies = {"alpha": ModelPolicy(True, "Apache-2.0"), "beta": ModelPolicy(True, "Apache-2.0")}
    _, result = await dump(stored, tmp_path / "one.parquet", format="arena",
                           model_policies=policies, models=frozenset(policies))
    assert result.rows == 1
    meta = front_matter(result.card)
    assert meta["license"] == "apache-2.0" and meta["language"] == ["ru"]
    text = result.card.read_text(encoding="utf-8")
    assert "| alpha | 1 |" in text and "| beta | 1 |" in text and "| arena | 1 |" in text

    # Two candidate languages: lingua's trigram mode reads a three-word question such as
    # "And a fruit?" as Portuguese when offered the default dozen.
    _, result = await dump(stored, tmp_path / "all.parquet", format="arena",
                           model_policies=OPEN, include_restricted=True,
                           languages=("en", "ru"))
    meta = front_matter(result.card)  # rewritten: chatmux wrote the last one
    assert meta["license"] == "other" and "cc-by-4.0" in meta["license_details"]
    assert sorted(meta["language"]) == ["en", "ru"]
    text = result.card.read_text(encoding="utf-8")
    assert "languages:\n- en\n- ru\n" in text and "near_duplicates" not in text

    _, result = await dump(stored, tmp_path / "near.parquet", format="arena",
                           model_policies=OPEN, include_restricted=True, near_duplicates=0.9)
    assert "near_duplicates: 0.9\n" in result.card.read_text(encoding="utf-8")


async def test_a_readme_chatmux_did_not_write_is_kept(stored, tmp_path):
    (tmp_path / "README.md").write_text("# my notes\n", encoding="utf-8")
    with pytest.raises(ExportOptionsError, match="not written by chatmux"):
        await export(stored, ExportOptions(format="arena"), tmp_path / "a.parquet")
    assert not (tmp_path / "a.parquet").exists()
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "# my notes\n"


async def test_models_added_in_chat_keep_their_policy_after_removal(stored, tmp_path):
    model_id, options = split_args("open_b url=http://gpu:8000/v1 model=m exportable=0 "
                                   "data_license=\"custom terms\"")
    spec = endpoint_spec(model_id, options)
    assert (spec.exportable, spec.data_license) == (False, "custom terms")
    admin = AdminRepository(stored)
    await admin.save_override(model_id, actor_id=None, action="addmodel",
                              spec=spec.model_dump(mode="json", exclude={"id"}))
    file_policies = {**OPEN, "closed": ModelPolicy(), "open_a": ModelPolicy(),
                     "open_b": ModelPolicy(True, "mit")}  # the stored override wins
    rows, result = await dump(stored, tmp_path / "a.jsonl", format="arena",
                              model_policies=file_policies)
    assert ("open_a", "open_b") not in pairs(rows)
    assert result.removed == {"restricted_model": 1}
    # /rmmodel keeps the stored entry: the policy still applies to the old answers.
    await admin.save_override(model_id, actor_id=None, action="rmmodel", spec=None,
                              enabled=False, removed=True)
    rows, _ = await dump(stored, tmp_path / "b.jsonl", format="arena",
                         model_policies=file_policies, include_restricted=True)
    assert {r["model_b"]: r["licenses"] for r in rows}["open_b"] == ["custom terms",
                                                                       "unknown"]
