"""Preference dumps that trainers load as they are: TRL DPO/KTO/SFT and LMSYS arena battles."""

from storage.exports.options import (
    DEFAULT_SOURCES,
    FORMATS,
    SOURCES,
    ExportOptions,
    ExportOptionsError,
    suffix_of,
)
from storage.exports.runner import ExportResult, count_judgements, export, export_in_thread

__all__ = [
    "DEFAULT_SOURCES",
    "FORMATS",
    "SOURCES",
    "ExportOptions",
    "ExportOptionsError",
    "ExportResult",
    "count_judgements",
    "export",
    "export_in_thread",
    "suffix_of",
]
