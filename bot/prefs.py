"""What a chat and an asker chose (/system, /persona, /settings, a group's /model), applied to
whichever model answers.

The system prompt in force (`generation_for`): the chat's own /system text, else its persona's
prompt, else the model's catalogue `system_prompt`, else none. The chat's own text and a persona
exclude each other: /system <text> clears the persona, choosing a persona clears the chat's own
text, /system reset clears both. A persona no longer in the catalogue counts as none (the
model's default applies; /system and /persona say it is gone).

Parameters: the model's catalogue `params`, overridden by the user's /settings
(`User.gen_settings`), each clamped to the model's `user_params` every time they are used (the
user may since have switched to a model with narrower bounds): temperature within
[temperature_min, temperature_max]; top_p only where `user_params.top_p`; max_tokens from
`MIN_MAX_TOKENS` up to `user_params.max_tokens`, or a quarter of the context window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inference.catalogue import ModelSpec, Persona
from inference.registry import ModelRegistry
from storage.models import User
from storage.repositories.users import ChatPrefs

# /system: the longest prompt a chat may set, in characters.
SYSTEM_PROMPT_LIMIT = 4000
MIN_MAX_TOKENS = 16
TOP_P_MIN = 0.05
SETTINGS = ("temperature", "max_tokens", "top_p")


@dataclass(frozen=True, slots=True)
class Preferences:
    """The choices a turn is answered with, whatever the model (see `generation_for`)."""

    system_prompt: str | None = None  # the chat's own /system text
    persona: Persona | None = None  # the chat's persona, if still in the catalogue
    settings: Mapping[str, Any] | None = None  # the asker's /settings

    @classmethod
    def of(cls, chat: ChatPrefs, user: User | None, registry: ModelRegistry) -> Preferences:
        return cls(
            system_prompt=chat.system_prompt,
            persona=None if chat.system_prompt else registry.persona(chat.persona_id),
            settings=user.gen_settings if user is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Generation:
    """What one model is sent and what is stored with its answer."""

    system_prompt: str | None
    persona_id: str | None
    params: dict[str, float | int]


def max_tokens_limit(spec: ModelSpec) -> int:
    """The longest answer a user may ask `spec` for, in tokens."""
    return spec.user_params.max_tokens or max(MIN_MAX_TOKENS, spec.context_window // 4)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def in_bounds(spec: ModelSpec, name: str, value: float) -> bool:
    """Whether a user may set `name` to `value` for `spec` (/settings)."""
    bounds = spec.user_params
    if name == "temperature":
        return bounds.temperature_min <= value <= bounds.temperature_max
    if name == "top_p":
        return bounds.top_p and TOP_P_MIN <= value <= 1
    if name == "max_tokens":
        return value == int(value) and MIN_MAX_TOKENS <= value <= max_tokens_limit(spec)
    return False


def user_params(spec: ModelSpec, settings: Mapping[str, Any] | None) -> dict[str, float | int]:
    """The user's stored settings that apply to `spec`, clamped to its bounds."""
    bounds = spec.user_params
    chosen: dict[str, float | int] = {}
    for name in SETTINGS:
        value = _number((settings or {}).get(name))
        if value is None:
            continue
        if name == "temperature":
            chosen[name] = round(min(max(value, bounds.temperature_min),
                                     bounds.temperature_max), 2)
        elif name == "top_p" and bounds.top_p:
            chosen[name] = round(min(max(value, TOP_P_MIN), 1.0), 2)
        elif name == "max_tokens":
            chosen[name] = int(min(max(value, MIN_MAX_TOKENS), max_tokens_limit(spec)))
    return chosen


def generation_for(spec: ModelSpec, prefs: Preferences | None) -> Generation:
    """The system prompt and parameters `spec` answers with under `prefs` (see the module)."""
    prefs = prefs or Preferences()
    params = {**spec.params.as_request(), **user_params(spec, prefs.settings)}
    if prefs.system_prompt:
        return Generation(prefs.system_prompt, None, params)
    if prefs.persona is not None:
        return Generation(prefs.persona.system_prompt, prefs.persona.id, params)
    return Generation(spec.system_prompt or None, None, params)


def answering_model(chat: ChatPrefs, user: User, registry: ModelRegistry) -> str | None:
    """The model that answers `user` in a chat: the chat's own (a group's /model) while it is
    enabled, else the user's."""
    if chat.model_id and registry.is_enabled(chat.model_id):
        return chat.model_id
    return user.model_id
