"""The dumps go straight into TRL's trainers: one training step each on a tiny local model.

No conversion script: `load_dataset` reads the file, the trainer applies the chat template and
tokenizes, and a step of DPO, reward modelling (with `margin`), KTO and SFT runs on the CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import load_dataset
from trl import (
    DPOConfig,
    DPOTrainer,
    KTOConfig,
    KTOTrainer,
    RewardConfig,
    RewardTrainer,
    SFTConfig,
    SFTTrainer,
)
from trl.data_utils import maybe_apply_chat_template

from storage.db import create_engine, create_sessionmaker
from storage.exports import ExportOptions, export
from tests.integration.export_scenario import store_scenario
from tests.local_models import BYTE_VOCAB_SIZE, build_llama, byte_tokenizer, llama_config


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A saved 2-layer Llama over a byte tokenizer with a chat template."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    build_llama(llama_config(vocab_size=BYTE_VOCAB_SIZE, max_positions=1024),
                seed=0).save_pretrained(directory)
    byte_tokenizer().save_pretrained(directory)
    return directory


async def dump(database_url: str, tmp_path: Path, fmt: str, name: str, **options):
    await store_scenario(database_url)
    engine = create_engine(database_url)
    try:
        result = await export(create_sessionmaker(engine), ExportOptions(format=fmt, **options),
                              tmp_path / name)
    finally:
        await engine.dispose()
    kind = "parquet" if name.endswith(".parquet") else "json"
    dataset = load_dataset(kind, data_files=str(result.path), split="train",
                           cache_dir=str(tmp_path / "hf-cache"))
    assert len(dataset) == result.rows > 0
    return dataset


def training_args(tmp_path: Path) -> dict:
    return {"output_dir": str(tmp_path / "out"), "max_steps": 1,
            "per_device_train_batch_size": 2, "report_to": [], "use_cpu": True,
            "save_strategy": "no", "logging_steps": 1, "max_length": 1024}


def one_step(trainer) -> float:
    loss = trainer.train().training_loss
    assert math.isfinite(loss)
    return loss


async def test_dpo_dump_trains_with_dpo_and_reward_trainers(database_url, tmp_path,
                                                            tiny_model):
    dataset = await dump(database_url, tmp_path, "dpo", "dpo.parquet")
    tokenizer = byte_tokenizer()
    templated = maybe_apply_chat_template(dataset[0], tokenizer)
    row = dataset[0]
    assert templated["prompt"].endswith("<|assistant|>")
    assert templated["chosen"].startswith(row["chosen"][0]["content"])
    trainer = DPOTrainer(model=str(tiny_model), args=DPOConfig(**training_args(tmp_path)),
                         train_dataset=dataset, processing_class=tokenizer)
    assert len(trainer.train_dataset) == len(dataset)  # nothing dropped while tokenizing
    one_step(trainer)

    reward = RewardTrainer(model=str(tiny_model), args=RewardConfig(**training_args(tmp_path)),
                           train_dataset=dataset, processing_class=tokenizer)
    assert "margin" in reward.train_dataset.column_names
    one_step(reward)


async def test_kto_dump_trains_with_kto_trainer(database_url, tmp_path, tiny_model):
    dataset = await dump(database_url, tmp_path, "kto", "kto.jsonl", sources=("likes", "edit"))
    assert set(dataset["label"]) == {True, False}
    trainer = KTOTrainer(model=str(tiny_model), args=KTOConfig(**training_args(tmp_path)),
                         train_dataset=dataset, processing_class=byte_tokenizer())
    one_step(trainer)


async def test_sft_dump_trains_with_sft_trainer(database_url, tmp_path, tiny_model):
    dataset = await dump(database_url, tmp_path, "sft", "sft.jsonl.gz")
    trainer = SFTTrainer(model=str(tiny_model), args=SFTConfig(**training_args(tmp_path)),
                         train_dataset=dataset, processing_class=byte_tokenizer())
    assert len(trainer.train_dataset) == len(dataset)
    one_step(trainer)
