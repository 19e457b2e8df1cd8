"""What the CLI and the bot's /export tell the exporter about models and consent."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings
from inference.catalogue import Catalogue, CatalogueError, load_catalogue
from storage.exports.options import ModelPolicy


def catalogue_policies(catalogue: Catalogue) -> dict[str, ModelPolicy]:
    """Each model's export policy from the catalogue file: its entries (also disabled ones)
    and `retired_models`. Models added in chat are read from the database by the exporter."""
    entries = [*catalogue.retired_models, *catalogue.models]
    return {m.id: ModelPolicy(m.exportable, m.data_license) for m in entries}


def policy_options(settings: Settings, *, include_restricted: bool = False) -> dict[str, Any]:
    """ExportOptions fields from the settings: DATA_CONSENT and the catalogue's policies.

    Without a readable catalogue no model's terms are known, so every answer is restricted:
    that fails here unless `include_restricted` says to keep them anyway.
    """
    try:
        policies = catalogue_policies(load_catalogue(settings.models_file))
    except CatalogueError:
        if not include_restricted:
            raise
        policies = {}
    return {"model_policies": policies, "include_restricted": include_restricted,
            "data_consent": settings.data_consent}
