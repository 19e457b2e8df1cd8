"""Live set of models and their backends."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import Catalogue, ModelSpec
from inference.errors import BadRequest
from inference.protocol import ChatBackend

log = logging.getLogger(__name__)


class UnknownModel(BadRequest):
    kind = "unknown_model"


class ModelRegistry:
    """Models by id, with one backend each. API keys come from `secrets` (usually the env)."""

    def __init__(self, catalogue: Catalogue, secrets: Mapping[str, str]) -> None:
        self._catalogue = catalogue
        self._secrets = secrets
        self._backends: dict[str, ChatBackend] = {}
        for spec in catalogue.models:
            if spec.api_key_env and not secrets.get(spec.api_key_env):
                # Named, never shown: the key itself is not logged.
                log.warning("model %s: env var %s is not set", spec.id, spec.api_key_env)

    @property
    def default_id(self) -> str:
        return self._catalogue.default_model

    def enabled(self) -> list[ModelSpec]:
        return self._catalogue.enabled

    @property
    def arena_default(self) -> bool:
        return self._catalogue.arena_default

    def arena_models(self) -> list[ModelSpec]:
        return [m for m in self.enabled() if m.arena_weight > 0]

    def arena_pair(self, rng: random.Random) -> tuple[ModelSpec, ModelSpec] | None:
        """Two different models drawn by arena weight (without replacement), in random order."""
        pool = self.arena_models()
        if len(pool) < 2:
            return None
        first = rng.choices(pool, weights=[m.arena_weight for m in pool])[0]
        rest = [m for m in pool if m.id != first.id]
        second = rng.choices(rest, weights=[m.arena_weight for m in rest])[0]
        return first, second

    def spec(self, model_id: str | None) -> ModelSpec:
        """The model, or the default one when `model_id` is unknown, disabled or None."""
        spec = self._catalogue.get(model_id) if model_id else None
        if spec is None or not spec.enabled:
            spec = self._catalogue.get(self.default_id)
        assert spec is not None  # the catalogue validates its default
        return spec

    def title(self, model_id: str | None) -> str:
        """A model's display name, even for one no longer in the catalogue."""
        spec = self._catalogue.get(model_id) if model_id else None
        return spec.title if spec else (model_id or "?")

    def is_enabled(self, model_id: str | None) -> bool:
        spec = self._catalogue.get(model_id) if model_id else None
        return spec is not None and spec.enabled

    def backend(self, model_id: str) -> ChatBackend:
        spec = self._catalogue.get(model_id)
        if spec is None:
            raise UnknownModel(model_id)
        backend = self._backends.get(model_id)
        if backend is None:
            key = self._secrets.get(spec.api_key_env) if spec.api_key_env else None
            backend = self._backends[model_id] = OpenAICompatBackend(spec, key)
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
