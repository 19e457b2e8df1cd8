"""Language tags of dump rows: lingua over the configured languages, measured on a labelled
sample of prompts (tests/data/language_sample.tsv)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from storage.exports.language import UNDETERMINED, LanguageTagger, check_languages
from storage.exports.options import DEFAULT_LANGUAGES, ExportOptions, ExportOptionsError

SAMPLE = Path(__file__).parent.parent / "data" / "language_sample.tsv"
NO_SPACES = {"zh", "ja"}  # no words to count: their sentences count as long


def sample() -> list[tuple[str, str]]:
    rows = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, text = line.split("\t", 1)
            rows.append((code, text))
    return rows


def is_long(code: str, text: str) -> bool:
    return code in NO_SPACES or len(text.split()) >= 10


@pytest.fixture(scope="module")
def tag() -> LanguageTagger:
    return LanguageTagger(DEFAULT_LANGUAGES)


def accuracy(tag: LanguageTagger, rows: list[tuple[str, str]]) -> dict[str, float]:
    right, total = Counter(), Counter()
    for code, text in rows:
        total[code] += 1
        right[code] += tag(text) == code
    return {code: right[code] / total[code] for code in total}


def test_the_sample_is_varied_enough_to_mean_something():
    rows = sample()
    long_ = Counter(code for code, text in rows if is_long(code, text))
    assert long_["en"] >= 30 and long_["ru"] >= 30
    others = {code for code in long_ if code not in ("en", "ru")}
    assert others <= set(DEFAULT_LANGUAGES) and len(others) >= 8
    assert sum(not is_long(code, text) for code, text in rows) >= 15
    assert len({text for _, text in rows}) == len(rows)


def test_english_and_russian_of_ten_words_or_more_are_tagged_right(tag):
    rows = [(code, text) for code, text in sample() if is_long(code, text)]
    scores = accuracy(tag, rows)
    assert scores["en"] >= 0.95 and scores["ru"] >= 0.95, scores


def test_other_configured_languages_in_full_sentences(tag):
    rows = [(code, text) for code, text in sample()
            if is_long(code, text) and code not in ("en", "ru")]
    scores = accuracy(tag, rows)
    right = sum(scores[c] * sum(1 for code, _ in rows if code == c) for c in scores)
    assert right / len(rows) >= 0.9, scores
    assert scores["uk"] >= 0.8, scores  # the neighbour Russian is most easily mistaken for


def test_short_texts(tag):
    """Short prompts are harder (lingua's low-accuracy mode reads trigrams only): Cyrillic
    ones are mostly right; texts without letters are always "und"."""
    short = [(code, text) for code, text in sample() if not is_long(code, text)]
    scores = accuracy(tag, [r for r in short if r[0] == "ru"])
    assert scores["ru"] >= 0.75, scores
    for text in ("12345 + 678", "2 + 2 = ?", "🙂🙂🙂", "", "   ", "a"):
        assert tag(text) == UNDETERMINED, text


def test_languages_outside_the_set_are_never_named():
    tag = LanguageTagger(["en", "ru"])
    german = "Kannst du mir erklären, was der Unterschied zwischen einem Prozess ist?"
    assert tag(german) in ("en", "ru", UNDETERMINED)
    assert tag("Как приготовить настоящий борщ со свёклой и капустой на четверых?") == "ru"


def test_no_languages_no_detector():
    none = LanguageTagger([])
    assert none._detector is None and none("How do I cook borscht?") == UNDETERMINED


def test_codes_are_checked_and_normalised():
    assert check_languages([" EN", "ru", "en", ""]) == ("en", "ru")
    with pytest.raises(ExportOptionsError, match="two or more"):
        check_languages(["ru"])
    for bad in (["xx"], ["english"], ["e1"], ["__"]):
        with pytest.raises(ExportOptionsError, match="unknown language code"):
            check_languages(bad)
    assert ExportOptions(format="arena", languages=("DE", "en")).languages == ("de", "en")
    with pytest.raises(ExportOptionsError):
        ExportOptions(format="arena", languages=("zz",))
    with pytest.raises(ExportOptionsError, match="near-duplicates"):
        ExportOptions(format="arena", near_duplicates=1.5)


def test_settings_read_export_languages(monkeypatch):
    from pydantic import ValidationError

    from bot.settings import Settings

    monkeypatch.setenv("EXPORT_LANGUAGES", "en, RU,uk")
    assert Settings(_env_file=None).export_languages == ("en", "ru", "uk")
    monkeypatch.setenv("EXPORT_LANGUAGES", "")
    assert Settings(_env_file=None).export_languages == ()
    monkeypatch.delenv("EXPORT_LANGUAGES")
    assert Settings(_env_file=None).export_languages == DEFAULT_LANGUAGES
    monkeypatch.setenv("EXPORT_LANGUAGES", "en,klingon")
    with pytest.raises(ValidationError, match="unknown language code"):
        Settings(_env_file=None)
