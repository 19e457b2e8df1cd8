"""Errors of the in-process engine (importable without torch)."""

from __future__ import annotations

INSTALL_HINT = "backend: hf needs the local engine: pip install 'chatmux[local]'"


class LocalEngineUnavailable(Exception):
    """torch or transformers is not installed."""

    def __init__(self, detail: str = INSTALL_HINT) -> None:
        super().__init__(detail)


class ModelLoadError(Exception):
    """A model directory is missing or does not hold a loadable model; the message names it."""
