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


def forest_of(texts: list[str]):
    from storage.exports.tree import Forest

    nodes = {i: (i, None, "user", text, "complete", None, None, None, 0)
             for i, text in enumerate(texts)}
    tagger = LanguageTagger(DEFAULT_LANGUAGES, background=True)
    return Forest(nodes, None, tag=tagger), tagger


async def test_a_big_batch_is_tagged_in_a_child_process():
    """What `export` does for a large dump: the questions go to a spawned process, and the
    rows read their tags without detecting anything here."""
    from storage.exports import language

    texts = [f"{text} ({n})" for n in range(7) for code, text in sample()
             if is_long(code, text) and code in ("en", "ru")]
    assert len(texts) >= language.BACKGROUND_FROM
    forest, tagger = forest_of(texts)
    try:
        await tagger.prefetch(forest, range(len(texts)))
        assert tagger._pool is not None and tagger._detector is None  # nothing built here
        assert all(forest.has_language(i) for i in range(len(texts)))
        tags = Counter(forest.language(i) for i in range(len(texts)))
        assert tags["en"] >= 0.95 * sum(1 for t in texts if t.isascii())
        assert tags["en"] + tags["ru"] >= 0.95 * len(texts)
        assert tagger._detector is None
    finally:
        tagger.close()


async def test_a_small_batch_is_tagged_in_place():
    forest, tagger = forest_of(["Как приготовить настоящий борщ со свёклой и капустой?"])
    await tagger.prefetch(forest, [0])
    assert tagger._pool is None and not forest.has_language(0)
    assert forest.language(0) == "ru"


async def test_a_broken_child_process_falls_back_to_tagging_in_place(monkeypatch):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from storage.exports import language

    texts = [f"How do I cook borscht for {n} people at home tonight?" for n in range(600)]
    forest, tagger = forest_of(texts)

    class BrokenPool:  # what a child that died on start-up leaves
        def __init__(self, *args, **kwargs) -> None:
            pass

        def submit(self, *args) -> Future:
            future: Future = Future()
            future.set_exception(BrokenProcessPool("the child died"))
            return future

        def shutdown(self, **kwargs) -> None:
            pass

    monkeypatch.setattr(language, "ProcessPoolExecutor", BrokenPool)
    await tagger.prefetch(forest, range(600))
    assert tagger._pool is None and not tagger._background
    assert forest.language(5) == "en"
