"""The live set of models: the catalogue file plus admins' changes, with a backend each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from inference.backends.openai_compat import OpenAICompatBackend
from inference.catalogue import Catalogue, ModelSpec, Persona
from inference.errors import BadRequest
from inference.keys import KeyRing
from inference.protocol import ChatBackend

log = logging.getLogger(__name__)

# A replaced backend may still be streaming answers; it is closed after this long.
RETIRE_AFTER = 600.0


class UnknownModel(BadRequest):
    kind = "unknown_model"


@dataclass(frozen=True, slots=True)
class Override:
    """An admin's change to one model id (the database wins over the file)."""

    model_id: str
    spec: dict[str, Any] | None  # a whole entry for a model added in chat
    enabled: bool = True
    removed: bool = False


def make_backend(spec: ModelSpec, api_key: str | None) -> ChatBackend:
    """vLLM models and replica sets get the routing backend; single APIs a plain client;
    hf models the in-process engine (loaded on first use)."""
    from inference.observed import ObservedBackend

    if spec.backend == "hf":
        from inference.local import HFBackend

        assert spec.path is not None  # the catalogue requires it for hf
        local = HFBackend(
            spec.path, draft_path=spec.draft_path,
            num_speculative_tokens=spec.num_speculative_tokens, device=spec.device,
            dtype=spec.dtype, default_max_tokens=spec.params.max_tokens or 512,
        )
        return ObservedBackend(local, f"local:{spec.path}")
    if spec.backend == "vllm" or len(spec.urls) > 1:
        from inference.replicas import ReplicaSetBackend

        return ReplicaSetBackend(spec, api_key)
    backend = OpenAICompatBackend(spec, api_key)
    return ObservedBackend(backend, backend.base_url)


def _same_serving(a: ModelSpec | None, b: ModelSpec | None) -> bool:
    """Whether two entries can share a backend (enabling or disabling does not change it)."""
    if a is None or b is None:
        return False
    return a.model_copy(update={"enabled": True}) == b.model_copy(update={"enabled": True})


class ModelRegistry:
    """Models by id, with one backend each. API keys come from `keys`, which also decides
    where each key may be sent: a stored model whose key is not allowed is not loaded."""

    def __init__(self, catalogue: Catalogue, keys: KeyRing) -> None:
        self._catalogue = catalogue
        self.keys = keys
        self._models: dict[str, ModelSpec] = {m.id: m for m in catalogue.models}
        self._backends: dict[str, ChatBackend] = {}
        self._retiring: set[asyncio.Task] = set()
        for spec in catalogue.models:
            self._warn_missing_key(spec)

    def _warn_missing_key(self, spec: ModelSpec) -> None:
        if spec.api_key_env and not self.keys.is_set(spec.api_key_env):
            # Named, never shown: the key itself is not logged.
            log.warning("model %s: env var %s is not set", spec.id, spec.api_key_env)

    def apply(self, overrides: list[Override]) -> None:
        """Rebuild the live set from the file plus `overrides`. Backends of models whose entry
        changed are replaced; answers already streaming from the old ones finish."""
        models = {m.id: m for m in self._catalogue.models}
        for item in overrides:
            if item.removed:
                models.pop(item.model_id, None)
                continue
            spec = models.get(item.model_id)
            if item.spec is not None:
                try:
                    spec = ModelSpec.model_validate({**item.spec, "id": item.model_id})
                except ValidationError as exc:
                    log.error("stored model %s is invalid, skipped: %s", item.model_id, exc)
                    continue
                if not self.keys.allows(spec):
                    # Added before the operator withdrew the grant (or written around the bot).
                    log.error("stored model %s may not use key %s at its URLs, skipped",
                              item.model_id, spec.api_key_env)
                    continue
            if spec is not None:
                models[item.model_id] = spec.model_copy(update={"enabled": item.enabled})
        for model_id in list(self._backends):
            if not _same_serving(models.get(model_id), self._models.get(model_id)):
                self._retire(self._backends.pop(model_id))
        for spec in models.values():
            if spec != self._models.get(spec.id):
                self._warn_missing_key(spec)
        self._models = models

    def _retire(self, backend: ChatBackend) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_AFTER)
            finally:  # also when the registry closes first: no connections left open
                await backend.aclose()

        try:
            task = asyncio.get_running_loop().create_task(close_later())
        except RuntimeError:  # no loop: nothing can be streaming
            return
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @property
    def default_id(self) -> str:
        default = self._models.get(self._catalogue.default_model)
        if default is not None and default.enabled:
            return default.id
        enabled = self.enabled()
        return enabled[0].id if enabled else self._catalogue.default_model

    @property
    def arena_default(self) -> bool:
        return self._catalogue.arena_default

    @property
    def tiers(self) -> list[str]:
        """The user tiers admins assign with /tier (the first, `standard`, is the default)."""
        return list(self._catalogue.tiers)

    def personas(self) -> list[Persona]:
        """The catalogue's personas (/persona), in its order."""
        return list(self._catalogue.personas)

    def persona(self, persona_id: str | None) -> Persona | None:
        return self._catalogue.persona(persona_id)

    def all(self) -> list[ModelSpec]:
        return list(self._models.values())

    def enabled(self) -> list[ModelSpec]:
        """Enabled chat models. Transcription models (`transcription: true`) only turn voice
        into text: they are never offered in /model, drawn into the arena or a default."""
        return [m for m in self._models.values() if m.enabled and not m.transcription]

    def vision_models(self) -> list[ModelSpec]:
        """Enabled chat models that accept images."""
        return [m for m in self.enabled() if m.vision]

    def transcriber(self) -> ModelSpec | None:
        """The enabled transcription model (the first in the catalogue), if any."""
        return next((m for m in self._models.values() if m.enabled and m.transcription), None)

    def get(self, model_id: str) -> ModelSpec | None:
        return self._models.get(model_id)

    def in_file(self, model_id: str) -> bool:
        """Whether the catalogue file has this id (else an admin added it from the chat)."""
        return self._catalogue.get(model_id) is not None

    def arena_models(self) -> list[ModelSpec]:
        return [m for m in self.enabled() if m.arena_weight > 0]

    def arena_pair(self, rng: random.Random, *, vision: bool = False,
                   exclude: Collection[str] = ()) -> tuple[ModelSpec, ModelSpec] | None:
        """Two different models drawn by arena weight (without replacement), in random order;
        `vision`: among models that accept images only; `exclude`: models left out (the
        asker's quota for them is used up)."""
        pool = [m for m in self.arena_models()
                if (m.vision or not vision) and m.id not in exclude]
        if len(pool) < 2:
            return None
        first = rng.choices(pool, weights=[m.arena_weight for m in pool])[0]
        rest = [m for m in pool if m.id != first.id]
        second = rng.choices(rest, weights=[m.arena_weight for m in rest])[0]
        return first, second

    def spec(self, model_id: str | None) -> ModelSpec:
        """The model, or the default one when `model_id` is unknown, disabled or None."""
        spec = self._models.get(model_id) if model_id else None
        if spec is None or not spec.enabled or spec.transcription:
            spec = self._models.get(self.default_id) or self._catalogue.models[0]
        return spec

    def title(self, model_id: str | None) -> str:
        """A model's display name, even for one no longer in the catalogue."""
        spec = self._models.get(model_id) if model_id else None
        return spec.title if spec else (model_id or "?")

    def is_enabled(self, model_id: str | None) -> bool:
        spec = self._models.get(model_id) if model_id else None
        return spec is not None and spec.enabled

    def backend(self, model_id: str) -> ChatBackend:
        spec = self._models.get(model_id)
        if spec is None:
            raise UnknownModel(model_id)
        backend = self._backends.get(model_id)
        if backend is None:
            backend = self._backends[model_id] = make_backend(spec, self.keys.key_for(spec))
        return backend

    async def warm(self) -> None:
        """Start health checks of routed models now, so /models has data before first use."""
        for spec in self.enabled():
            if spec.backend == "vllm" or len(spec.urls) > 1:
                start = getattr(self.backend(spec.id), "start", None)
                if start is not None:
                    await start()

    def live_backends(self) -> dict[str, ChatBackend]:
        return dict(self._backends)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
