"""Language tags for dump rows: ISO 639-1 codes from lingua, restricted to a configured set.

The detector is built once per dump (`LanguageTagger`), in lingua's low-accuracy mode: trigram
models only, ~20 MB for the default set and ~60 µs a short prompt, where the high-accuracy
mode needs ~300 MB and is no faster; on prompts of ten words or more both are right for
English and Russian (tests/unit/test_export_language.py). What lingua cannot tell apart with
confidence, and text with too few letters, is "und" (ISO 639-2 "undetermined").

lingua holds the GIL while it works, so a big dump tags in a child process: each batch's
questions are sent there as soon as the batch is loaded and come back while the exporter
builds the previous batch's rows (`prefetch`); anything not tagged there is tagged in place.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.exports.tree import Forest

from storage.exports.options import ExportOptionsError

log = logging.getLogger(__name__)

UNDETERMINED = "und"
READ_CHARS = 300  # only the start of a long prompt is read: enough to tell, bounded cost
MIN_LETTERS = 2  # fewer letters than this: "und" without asking the detector
# lingua's minimum distance between the two likeliest languages' confidences: below it the
# text is ambiguous ("und"). Tuned on tests/data/language_sample.tsv.
MIN_RELATIVE_DISTANCE = 0.1
CACHE_SIZE = 100_000  # texts' tags remembered (by 64-bit hash) across batches
# A batch with at least this many untagged questions starts the child process (small dumps
# never do: starting it takes about a second, which the first such batch waits for).
BACKGROUND_FROM = 500


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

    def __init__(self, languages: Iterable[str], *, background: bool = False) -> None:
        self.languages = check_languages(languages)
        self._cache: dict[int, str] = {}
        self._detector = None
        self._background = background and bool(self.languages)
        self._pool: ProcessPoolExecutor | None = None
        self._local = not self._background
        if not self._background:
            self._build()

    def _build(self) -> None:
        self._local = True
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

    async def prefetch(self, forest: Forest, question_ids: Iterable[int]) -> None:
        """Tag these questions of `forest` in the child process, if it is running (and start
        it for a big batch); what is left is tagged in place when a row asks."""
        if not self._background:
            return
        todo: dict[str, list[int]] = {}
        for message_id in question_ids:
            if forest.has_language(message_id):
                continue
            text = forest.content(message_id)
            cached = self._cache.get(hash(text))
            if cached is not None:
                forest.set_language(message_id, cached)
            else:
                todo.setdefault(text, []).append(message_id)
        if not todo:
            return
        if self._pool is None:
            if len(todo) < BACKGROUND_FROM:
                return  # tagged in place
            # spawn: the exporter may run on a thread of the bot, where fork is unsafe.
            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.languages,))
        try:
            codes = await asyncio.wrap_future(self._pool.submit(_detect_all, list(todo)))
        except (BrokenProcessPool, OSError) as exc:
            # E.g. a script calling export() without an `if __name__ == "__main__"` guard,
            # which a spawned child re-runs. Slower, but the dump still comes out.
            log.warning("language tagging goes on in this process: %r", exc)
            self._background = False
            self.close()
            return
        if len(self._cache) + len(codes) > CACHE_SIZE:
            self._cache.clear()
        for (text, ids), code in zip(todo.items(), codes, strict=True):
            self._cache[hash(text)] = code
            for message_id in ids:
                forest.set_language(message_id, code)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _detect(self, text: str) -> str:
        if not self.languages:
            return UNDETERMINED
        if not self._local:
            self._build()
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


_worker: LanguageTagger | None = None


def _start_worker(languages: tuple[str, ...]) -> None:
    global _worker
    _worker = LanguageTagger(languages)


def _detect_all(texts: list[str]) -> list[str]:
    assert _worker is not None
    return [_worker._detect(text) for text in texts]
