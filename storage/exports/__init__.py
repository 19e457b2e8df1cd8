"""Preference dumps that trainers load as they are: TRL DPO/KTO/SFT and LMSYS arena battles.

The runner (and with it pyarrow and numpy, ~100 MB) is imported on first use, not by every
process that reads the options (the bot, until an admin exports).
"""

from typing import Any

from storage.exports.options import (
    DEFAULT_SOURCES,
    FORMATS,
    SOURCES,
    ExportOptions,
    ExportOptionsError,
    ModelPolicy,
    suffix_of,
)

_RUNNER = frozenset({"ExportResult", "count_judgements", "export", "export_in_thread"})


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from storage.exports import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_SOURCES",
    "FORMATS",
    "SOURCES",
    "ExportOptions",
    "ExportOptionsError",
    "ExportResult",
    "ModelPolicy",
    "count_judgements",
    "export",
    "export_in_thread",
    "suffix_of",
]
