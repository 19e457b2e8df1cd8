"""The system prompt and parameters a model answers with, from a chat's and a user's choices."""

from __future__ import annotations

from bot.prefs import (
    Preferences,
    answering_model,
    generation_for,
    in_bounds,
    max_tokens_limit,
    user_params,
)
from inference.catalogue import ModelSpec, Persona
from storage.models import User
from storage.repositories.users import ChatPrefs

PIRATE = Persona(id="pirate", title="Pirate", system_prompt="Arr.")


def spec(**fields) -> ModelSpec:
    return ModelSpec.model_validate({"id": "m", "base_url": "http://h/v1", "model": "m",
                                     "system_prompt": "Default.", "context_window": 8000,
                                     "params": {"temperature": 0.7, "max_tokens": 1000},
                                     **fields})


def test_prompt_precedence() -> None:
    model = spec()
    assert generation_for(model, None).system_prompt == "Default."
    persona = generation_for(model, Preferences(persona=PIRATE))
    assert (persona.system_prompt, persona.persona_id) == ("Arr.", "pirate")
    own = generation_for(model, Preferences(system_prompt="Mine.", persona=PIRATE))
    assert (own.system_prompt, own.persona_id) == ("Mine.", None)
    assert generation_for(spec(system_prompt=None), None).system_prompt is None


def test_settings_override_and_are_clamped_to_each_models_bounds() -> None:
    wide = spec()
    narrow = spec(user_params={"temperature_max": 0.3, "max_tokens": 300, "top_p": False})
    mine = {"temperature": 1.5, "max_tokens": 5000, "top_p": 0.9}
    assert generation_for(wide, Preferences(settings=mine)).params == {
        "temperature": 1.5, "max_tokens": 2000, "top_p": 0.9}  # a quarter of the window
    assert generation_for(narrow, Preferences(settings=mine)).params == {
        "temperature": 0.3, "max_tokens": 300}
    # Garbage stored by hand is ignored, not sent.
    assert user_params(wide, {"temperature": "hot", "max_tokens": True, "top_p": None}) == {}
    assert max_tokens_limit(narrow) == 300 and max_tokens_limit(wide) == 2000


def test_bounds_for_buttons() -> None:
    model = spec(user_params={"temperature_min": 0.2, "temperature_max": 1.0, "top_p": False})
    assert in_bounds(model, "temperature", 0.2) and not in_bounds(model, "temperature", 1.1)
    assert not in_bounds(model, "top_p", 0.9)
    assert in_bounds(model, "max_tokens", 512) and not in_bounds(model, "max_tokens", 512.5)
    assert not in_bounds(model, "max_tokens", 4096) and not in_bounds(model, "seed", 1)


def test_a_groups_model_wins_while_enabled() -> None:
    class Registry:
        def is_enabled(self, model_id: str | None) -> bool:
            return model_id == "on"

    user = User(telegram_id=1, model_id="mine")
    assert answering_model(ChatPrefs(model_id="on"), user, Registry()) == "on"  # type: ignore[arg-type]
    assert answering_model(ChatPrefs(model_id="off"), user, Registry()) == "mine"  # type: ignore[arg-type]
    assert answering_model(ChatPrefs(), user, Registry()) == "mine"  # type: ignore[arg-type]
