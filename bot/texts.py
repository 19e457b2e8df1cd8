"""What users read, in their language: Project Fluent catalogs under `bot/locales/<lang>/`
(every `*.ftl` file there), loaded through aiogram-i18n. A language is a directory of
translation files, not code; `tests/unit/test_locales.py` checks each has every key."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiogram_i18n.cores import FluentRuntimeCore

DEFAULT_LANG: Final = "en"
LOCALES_DIR: Final = Path(__file__).with_name("locales")
# Telegram clients in these languages get Russian when there is no catalog of their own.
_RUSSIAN_READERS: Final = frozenset({"uk", "be", "kk"})

_core = FluentRuntimeCore(path=LOCALES_DIR / "{locale}", default_locale=DEFAULT_LANG,
                          use_td=False)
_core.locales.update(_core.find_locales())

LANGUAGES: Final[tuple[str, ...]] = tuple(
    sorted(_core.locales, key=lambda code: (code != DEFAULT_LANG, code)))


def lang_of(language_code: str | None) -> str:
    """Telegram's `language_code` (or a /lang choice) → one of the languages we have."""
    code = (language_code or "").split("-")[0].lower()
    if code in _core.locales:
        return code
    if code in _RUSSIAN_READERS and "ru" in _core.locales:
        return "ru"
    return DEFAULT_LANG


def chosen_lang(choice: str | None, client: str) -> str:
    """The language to use: the user's /lang `choice` if any, else their client's."""
    return lang_of(choice) if choice else client


def t(key: str, lang: str, **values: object) -> str:
    """The text `key` in `lang` (English where the language has no catalog), with `values`
    put in; numbers are put in as they are written in code (no locale grouping)."""
    return _core.get(key, lang, **{k: v if isinstance(v, str) else str(v)
                                   for k, v in values.items()})


def has_text(key: str, lang: str = DEFAULT_LANG) -> bool:
    return _core.get_translator(lang).has_message(key)
