"""What an export contains: format, sources, filters and privacy settings."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from storage.models.feedback import STRENGTHS

FORMATS = ("dpo", "kto", "arena", "sft")
SOURCES = ("arena", "regenerate", "edit", "likes")
# Where each format's rows can come from, and what it uses when --source is not given.
ALLOWED_SOURCES = {
    "dpo": ("arena", "regenerate", "edit"),
    "kto": ("likes", "arena", "edit"),
    "arena": ("arena",),
    "sft": ("likes", "edit"),
}
DEFAULT_SOURCES = {
    "dpo": ("arena", "regenerate", "edit"),
    "kto": ("likes",),
    "arena": ("arena",),
    "sft": ("likes", "edit"),
}
# Strength scale (strongest first) and the `margin` each level gives a pair.
MARGINS = {"much_better": 3.0, "better": 2.0, "slightly_better": 1.0, "about_same": 0.5}
# Languages the `language` column can name (ISO 639-1; EXPORT_LANGUAGES replaces them);
# anything else, or too little text to tell, is "und".
DEFAULT_LANGUAGES = ("en", "ru", "uk", "de", "fr", "es", "it", "pt", "pl", "tr", "zh", "ja",
                     "ko", "ar")
# --near-duplicates without a value: MinHash Jaccard estimate of the prompts' word 3-grams.
NEAR_DUPLICATE_THRESHOLD = 0.85
UNKNOWN_STRENGTH_MARGIN = 1.0  # the asker voted but did not say by how much
EDIT_MARGIN = 2.0  # a user rewrote the answer: clearly better


CONSENT_MODES = ("opt_out", "opt_in")


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """What a model's terms allow for its answers: whether they may go into dumps at all, and
    the licence (SPDX id or free text) the dump's `licenses` column names for them."""

    exportable: bool = True
    data_license: str | None = None


class ExportOptionsError(ValueError):
    """A combination of options that cannot produce a meaningful dump; one line to show."""


@dataclass(frozen=True, slots=True)
class ExportOptions:
    format: str
    sources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    models: frozenset[str] | None = None
    min_strength: str | None = None
    # arena: tie and both-bad battles are rows (LMSYS releases and /leaderboard count them);
    # kto: a tie labels both answers good, "both bad" both bad. None: the format's default
    # (in for arena, out for kto); dpo and sft have no row for a tie.
    include_ties: bool | None = None
    scrub_pii: bool = False
    # Rows whose dialog has images: left out unless asked for, then with "[image]" markers.
    include_images: bool = False
    # Candidate languages for the `language` column; empty: no detection, every row "und".
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    # Drop rows whose prompt is a near duplicate (MinHash Jaccard estimate at or above this)
    # of an earlier row's; None: only exact duplicates are dropped.
    near_duplicates: float | None = None
    # Export policy per model id (the catalogue file's entries; the runner lays the model
    # overrides stored in the database over them). Given: a model id in neither is treated as
    # restricted. None: no policy source at all, every model is exportable (library callers).
    model_policies: Mapping[str, ModelPolicy] | None = None
    # Keep rows with answers from models marked `exportable: false` (or unknown).
    include_restricted: bool = False
    # DATA_CONSENT: opt_out leaves out users with data_consent false; opt_in keeps only users
    # with data_consent true. Judges and every author in a row's dialog must pass.
    data_consent: Literal["opt_out", "opt_in"] = "opt_out"
    # Secret for the salted hashes of ids; a random one makes ids unlinkable across dumps.
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportOptionsError(f"unknown format {self.format!r}; use one of "
                                     f"{', '.join(FORMATS)}")
        if not self.sources:
            object.__setattr__(self, "sources", DEFAULT_SOURCES[self.format])
        wrong = [s for s in self.sources if s not in ALLOWED_SOURCES[self.format]]
        if wrong:
            raise ExportOptionsError(
                f"--source {wrong[0]} does not apply to {self.format}; it takes "
                f"{', '.join(ALLOWED_SOURCES[self.format])}"
            )
        if self.min_strength is not None and self.min_strength not in STRENGTHS:
            raise ExportOptionsError(f"--min-strength must be one of {', '.join(STRENGTHS)}")
        if self.include_ties is None:
            object.__setattr__(self, "include_ties", self.format == "arena")
        if self.include_ties and self.format in ("dpo", "sft"):
            raise ExportOptionsError(
                "a tie says neither answer is preferred, so it makes no "
                f"{self.format} row; --include-ties applies to arena and kto"
            )
        if self.near_duplicates is not None and not 0 < self.near_duplicates <= 1:
            raise ExportOptionsError("--near-duplicates takes a similarity in (0, 1], e.g. 0.85")
        from storage.exports.language import check_languages

        object.__setattr__(self, "languages", check_languages(self.languages))
        if self.data_consent not in CONSENT_MODES:
            raise ExportOptionsError(f"data_consent must be one of {', '.join(CONSENT_MODES)}")
        if self.since and self.until and self.since >= self.until:
            raise ExportOptionsError("--since must be before --until")

    def strength_ok(self, strength: str | None) -> bool:
        """Whether a decisive battle's strength passes --min-strength (unknown does not)."""
        if self.min_strength is None:
            return True
        if strength is None:
            return False
        return STRENGTHS.index(strength) <= STRENGTHS.index(self.min_strength)

    def models_ok(self, *model_ids: str | None) -> bool:
        """Whether every model in a row is one of --models (human edits are not models)."""
        return self.models is None or all(m in self.models for m in model_ids if m)

    def anonymize(self, kind: str, row_id: int) -> str:
        """A keyed hash (BLAKE2b MAC with the salt) of an internal row id: stable for one
        salt, meaningless without it."""
        key = self.salt if len(self.salt) <= 64 else hashlib.sha256(self.salt).digest()
        message = f"{kind}:{row_id}".encode()
        return hashlib.blake2b(message, key=key, digest_size=10).hexdigest()


def suffix_of(path: str | Path) -> str:
    """The dump kind a file name asks for: jsonl, jsonl.gz or parquet."""
    name = str(path).lower()
    for suffix in ("jsonl.gz", "jsonl", "parquet"):
        if name.endswith("." + suffix):
            return suffix
    raise ExportOptionsError(f"{path}: the file name must end in .jsonl, .jsonl.gz or .parquet")
