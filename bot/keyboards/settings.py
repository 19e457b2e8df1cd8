"""The /settings keyboard: temperature steps, answer-length and top_p presets, reset.

Each button carries the value it sets (not a step), so a double tap sets it once, and the
user it belongs to (in groups everyone has their own settings)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.prefs import MIN_MAX_TOKENS, max_tokens_limit
from bot.texts import t
from inference.catalogue import ModelSpec

TEMPERATURE_STEP = 0.1
LENGTHS = (256, 512, 1024, 2048, 4096)
TOP_PS = (0.5, 0.8, 0.9, 0.95, 1.0)
# Callback names of the settings (short: callback data holds 64 bytes).
NAMES = {"t": "temperature", "m": "max_tokens", "p": "top_p"}
RESET = "r"


class GenSetting(CallbackData, prefix="gen"):
    owner: int  # the Telegram id whose settings these are
    name: str  # a key of NAMES, or RESET
    value: str = ""


def number(value: float) -> str:
    """0.7, 1, 0.95: no trailing zeros."""
    return f"{round(value, 2):g}"


def length_presets(spec: ModelSpec) -> list[int]:
    limit = max_tokens_limit(spec)
    presets = [n for n in LENGTHS if MIN_MAX_TOKENS <= n <= limit]
    if not presets or (limit < LENGTHS[-1] and limit not in presets):
        presets.append(limit)
    return presets


def settings_keyboard(owner: int, spec: ModelSpec, current: dict[str, float | int],
                      lang: str) -> InlineKeyboardMarkup:
    """`current`: the values in force (the model's defaults where the user set none)."""
    bounds = spec.user_params
    builder = InlineKeyboardBuilder()
    sizes = []
    temperature = float(current.get("temperature", 1.0))
    steps = [(label, round(temperature + delta, 2))
             for label, delta in (("−", -TEMPERATURE_STEP), ("+", TEMPERATURE_STEP))]
    steps = [(label, min(max(v, bounds.temperature_min), bounds.temperature_max))
             for label, v in steps]
    steps = [(label, v) for label, v in steps if v != round(temperature, 2)]
    for label, value in steps:
        builder.button(text=f"🌡 {label}{number(TEMPERATURE_STEP)} → {number(value)}",
                       callback_data=GenSetting(owner=owner, name="t", value=number(value)))
    if steps:
        sizes.append(len(steps))
    lengths = length_presets(spec)
    for n in lengths:
        mark = "✓ " if current.get("max_tokens") == n else ""
        builder.button(text=f"{mark}{n}", callback_data=GenSetting(owner=owner, name="m",
                                                                    value=str(n)))
    sizes.append(len(lengths))
    if bounds.top_p:
        for p in TOP_PS:
            mark = "✓ " if current.get("top_p") == p else ""
            builder.button(text=f"{mark}top_p {number(p)}",
                           callback_data=GenSetting(owner=owner, name="p", value=number(p)))
        sizes.extend([3, 2])
    builder.button(text=t("settings_reset_button", lang),
                   callback_data=GenSetting(owner=owner, name=RESET))
    sizes.append(1)
    builder.adjust(*sizes)
    return builder.as_markup()
