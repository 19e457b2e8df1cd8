"""Language tags for dump rows: ISO 639-1 codes from lingua, restricted to a configured set.

The detector is built once per dump (`LanguageTagger`), in lingua's low-accuracy mode: trigram
models only, ~20 MB for the default set and ~30k short prompts/s on one core, where the
high-accuracy mode needs ~250 MB and runs at half that speed; on prompts of ten words or more
both are right for English and Russian (tests/unit/test_export_language.py). What lingua
cannot tell apart with confidence, and text with too few letters, is "und" (ISO 639-2
"undetermined").
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.exports.options import ExportOptionsError

UNDETERMINED = "und"
READ_CHARS = 300  # only the start of a long prompt is read: enough to tell, bounded cost
MIN_LETTERS = 2  # fewer letters than this: "und" without asking the detector
# lingua's minimum distance between the two likeliest languages' confidences: below it the
# text is ambiguous ("und"). Tuned on tests/data/language_sample.tsv.
MIN_RELATIVE_DISTANCE = 0.1
CACHE_SIZE = 100_000  # texts' tags remembered (by 64-bit hash) across batches


def check_languages(codes: Iterable[str]) -> tuple[str, ...]:
    """`codes` normalised (lowercase, in order, once each); ExportOptionsError names a code
    lingua does not know."""
    from lingua import IsoCode639_1

    normalised: list[str] = []
    for code in codes:
        code = code.strip().lower()
        if not code or code in normalised:
            continue
        if not (len(code) == 2 and code.isascii() and code.isalpha()
                and hasattr(IsoCode639_1, code.upper())):
            raise ExportOptionsError(f"unknown language code {code!r} in the export languages "
                                     "(ISO 639-1, e.g. en,ru,de)")
        normalised.append(code)
    if len(normalised) == 1:
        raise ExportOptionsError("the export languages need two or more codes to choose "
                                 "between (or none, for no language tags)")
    return tuple(normalised)


class LanguageTagger:
    """Tags texts with one of `languages` (two or more) or "und". With no languages it tags
    nothing: every text is "und" and no detector is built."""

    def __init__(self, languages: Iterable[str]) -> None:
        self.languages = check_languages(languages)
        self._cache: dict[int, str] = {}
        self._detector = None
        if self.languages:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

            candidates = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper()))
                          for c in self.languages]
            self._detector = (LanguageDetectorBuilder.from_languages(*candidates)
                              .with_low_accuracy_mode()
                              .with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
                              .with_preloaded_language_models()
                              .build())

    def __call__(self, text: str) -> str:
        key = hash(text)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            cached = self._cache[key] = self._detect(text)
        return cached

    def _detect(self, text: str) -> str:
        if not self.languages:
            return UNDETERMINED
        sample = text[:READ_CHARS]
        letters = 0
        for ch in sample:
            if ch.isalpha():
                letters += 1
                if letters >= MIN_LETTERS:
                    break
        else:
            return UNDETERMINED
        assert self._detector is not None
        language = self._detector.detect_language_of(sample)
        if language is None:
            return UNDETERMINED
        return language.iso_code_639_1.name.lower()
