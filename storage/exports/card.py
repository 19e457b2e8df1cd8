"""The Hugging Face dataset card (README.md) written next to every dump.

Its YAML front matter (license, language, size_categories, task_categories, configs,
dataset_info) lets `datasets.load_dataset(folder)` and the Hub read the folder as it is; the
body counts rows per source, model, language and month and lists the options used.
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, floordiv, itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from storage.exports.options import ExportOptions, ExportOptionsError, suffix_of
from storage.exports.writers import MESSAGES, SCHEMAS

CARD = "README.md"
MARKER = "<!-- written by chatmux export; it rewrites this file on the next dump here -->"
# The language guesser's names, for rows written before it gave ISO 639-1 codes.
LANGUAGE_CODES = {"english": "en", "russian": "ru", "ukrainian": "uk", "german": "de",
                  "french": "fr", "spanish": "es", "chinese": "zh"}
# Hub licence ids a model's data_license may already be (compared lower-case).
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "odc-by", "odbl", "pddl",
    "bsd-2-clause", "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "openrail",
    "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "gemma", "unknown",
})
TASKS = {"dpo": "pairwise preferences (TRL DPO)",
         "kto": "unpaired preference labels (TRL KTO)",
         "arena": "LMSYS Chatbot Arena battles",
         "sft": "supervised fine-tuning dialogs (TRL SFT)"}


def check_folder(out: Path) -> None:
    """Fail before a dump starts if its folder has a README.md chatmux did not write (the
    Hub reads only that name, so a card beside it would not count; the user's file stays)."""
    card = out.parent / CARD
    if card.exists() and MARKER not in card.read_text(encoding="utf-8", errors="replace"):
        raise ExportOptionsError(
            f"{card} exists and was not written by chatmux; write the dump to another folder "
            "(a dataset card is written next to it) or move that file away")


class Stats:
    """Counts of written rows per source, model, language and month, taken a batch at a time
    with C-level counters (a few passes over the batch, no Python code per row)."""

    def __init__(self, format_: str) -> None:
        self.format = format_
        self.sources: Counter[str] = Counter()
        self.models: Counter[Any] = Counter()  # a model id, or a (model, model) pair
        self.languages: Counter[str] = Counter()
        self.times: Counter[Any] = Counter()  # (year, month), or arena's day numbers

    def add(self, rows: list[dict[str, Any]]) -> None:
        if self.format == "arena":
            self.sources["arena"] += len(rows)
            self.models.update(map(itemgetter("model_a", "model_b"), rows))
            self.times.update(map(floordiv, map(itemgetter("tstamp"), rows), repeat(86400)))
        else:
            self.sources.update(map(itemgetter("source"), rows))
            self.models.update(map(itemgetter(*_MODEL_COLUMNS[self.format]), rows))
            self.times.update(map(attrgetter("year", "month"),
                                  map(itemgetter("created_at"), rows)))
        self.languages.update(map(itemgetter("language"), rows))

    def by(self) -> dict[str, Counter[str]]:
        """Rows per source, model (a row counts once for each model in it), language, month."""
        models: Counter[str] = Counter()
        for key, n in self.models.items():
            for model in {key} if isinstance(key, str) or key is None else set(key):
                if model is not None:
                    models[model] += n
        months: Counter[str] = Counter()
        for key, n in self.times.items():
            if not isinstance(key, tuple):  # arena: days since the epoch
                moment = datetime.fromtimestamp(key * 86400, UTC)
                key = (moment.year, moment.month)
            months[f"{key[0]:04d}-{key[1]:02d}"] += n
        languages: Counter[str] = Counter()
        for language, n in self.languages.items():
            languages[language or "und"] += n
        return {"source": self.sources, "model": models, "language": languages,
                "month": months}


_MODEL_COLUMNS = {"dpo": ("chosen_model", "rejected_model"), "kto": ("model",),
                  "sft": ("model",)}


def language_code(value: str) -> str | None:
    """An ISO 639 code for the card's `language:` list (None: undetermined)."""
    value = value.strip().lower()
    code = LANGUAGE_CODES.get(value, value)
    if code in ("und", "unknown", "") or not code.isascii() or not code.isalpha():
        return None
    return code if 2 <= len(code) <= 3 else None


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                        (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")):
        if rows < limit:
            return name
    return "1B<n<10B"


def _feature(type_: pa.DataType, jsonl: bool) -> dict[str, Any]:
    """A column's `datasets` feature as the card's YAML spells it."""
    if type_ == MESSAGES:
        return {"list": [{"name": "role", "dtype": "string"},
                         {"name": "content", "dtype": "string"}]}
    if pa.types.is_list(type_):
        return {"list": _feature(type_.value_type, jsonl)["dtype"]}
    if pa.types.is_timestamp(type_):
        # JSON Lines hold ISO 8601 strings; Parquet a real timestamp.
        return {"dtype": "string" if jsonl else "timestamp[us, tz=UTC]"}
    names = {pa.string(): "string", pa.float64(): "float64", pa.int32(): "int32",
             pa.bool_(): "bool"}
    return {"dtype": names[type_]}


def _license(licences: set[str]) -> dict[str, Any]:
    if len(licences) == 1:
        (only,) = licences
        if only.lower() in HUB_LICENSES:
            return {"license": only.lower()}
    return {"license": "other", "license_name": "mixed",
            "license_details": "Rows carry the licences of the models whose answers they "
            "hold (the `licenses` column): " + ", ".join(sorted(licences) or ["none"])}


def _options(options: ExportOptions) -> dict[str, Any]:
    shown = {
        "format": options.format, "sources": list(options.sources),
        "since": options.since.isoformat() if options.since else None,
        "until": options.until.isoformat() if options.until else None,
        "models": sorted(options.models) if options.models is not None else None,
        "min_strength": options.min_strength, "include_ties": options.include_ties,
        "scrub_pii": options.scrub_pii, "include_images": options.include_images,
        "include_restricted": options.include_restricted,
        "data_consent": options.data_consent,
        "languages": list(options.languages) or None,  # the detector's candidates
        "near_duplicates": options.near_duplicates,  # the MinHash threshold, if used
    }
    return {k: v for k, v in shown.items() if v is not None}


def _table(title: str, counts: Counter[str], key: Callable[[tuple[str, int]], Any]) -> str:
    lines = [f"### {title}", "", f"| {title.split()[-1]} | rows |", "|---|---:|"]
    lines += [f"| {name} | {n:,} |" for name, n in sorted(counts.items(), key=key)]
    return "\n".join(lines)


def card_text(out: Path, options: ExportOptions, rows: int, judgements: int,
              stats: Stats, licences: set[str], removed: Mapping[str, int]) -> str:
    jsonl = suffix_of(out) != "parquet"
    by = stats.by()
    languages = sorted({c for c in map(language_code, by["language"]) if c})
    try:
        version = importlib.metadata.version("chatmux")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    front: dict[str, Any] = {
        **_license(licences),
        "language": languages,
        "size_categories": [_size_category(rows)],
        "task_categories": ["text-generation"],
        "tags": ["chatmux", options.format, "preference" if options.format != "sft" else "sft"],
        "pretty_name": f"chatmux {options.format} dump",
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": out.name}]}],
        "dataset_info": {
            "config_name": "default",
            "features": [{"name": f.name, **_feature(f.type, jsonl)}
                         for f in SCHEMAS[options.format]],
            "splits": [{"name": "train", "num_examples": rows}],
        },
    }
    if not languages:
        del front["language"]
    by_count = (lambda kv: (-kv[1], kv[0]))  # noqa: E731
    left_out = {k: v for k, v in removed.items() if v}
    body = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---",
        MARKER, "",
        f"# chatmux {options.format} dump", "",
        f"{rows:,} rows ({TASKS[options.format]}) from {judgements:,} judgements, in "
        f"`{out.name}`; written by chatmux {version} on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Ids are salted hashes; no Telegram ids "
        "or names.", "",
        "## Licences", "",
        "Each row's `licenses` lists the `data_license` of every model whose answer is in "
        "it (judged answers and earlier turns); `unknown`: a model without one. Human edits "
        "add none. " + (", ".join(f"`{x}`" for x in sorted(licences)) or "none") + ".", "",
        "## Rows", "",
        _table("Rows per source", by["source"], by_count), "",
        _table("Rows per model", by["model"], by_count), "",
        _table("Rows per language", by["language"], by_count), "",
        _table("Rows per month", by["month"], lambda kv: kv[0]), "",
        "## Left out", "",
        "\n".join(f"- {k}: {v:,}" for k, v in sorted(left_out.items())) or "- nothing", "",
        "## Options", "",
        "```yaml", yaml.safe_dump(_options(options), sort_keys=False).rstrip(), "```", "",
    ]
    return "\n".join(body)


def write_card(out: Path, *args: Any, **kwargs: Any) -> Path:
    path = out.parent / CARD
    path.write_text(card_text(out, *args, **kwargs), encoding="utf-8")
    return path
