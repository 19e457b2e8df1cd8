"""Parsing admin command arguments: `/addmodel id key=value …` (quotes allowed)."""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

from pydantic import ValidationError

from inference.catalogue import ModelSpec
from inference.pool.argv import LaunchRequest, shown
from inference.ray.app_config import Replicas

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UsageError(ValueError):
    """Malformed arguments; the message says what is wrong."""


def whole_number(text: str, max_digits: int = 9) -> int | None:
    """`text` as a non-negative int if it is ASCII digits only (not "²", "٣" or 10^5000)."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def split_args(text: str | None) -> tuple[str, dict[str, list[str]]]:
    """`alpha url=a url=b title="Big one"` → ("alpha", {"url": ["a", "b"], "title": [...]})."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise UsageError(f"unbalanced quotes ({exc})") from None
    if not words:
        raise UsageError("the model id is missing")
    model_id, *rest = words
    if not ID_RE.match(model_id):
        raise UsageError(f"bad model id {shown(model_id)}: letters, digits, . _ - (up to 40)")
    options: dict[str, list[str]] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise UsageError(f"expected key=value, got {shown(word)}")
        options.setdefault(key.lower(), []).append(value)
    return model_id, options


def one(options: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = options.get(key)
    if values and len(values) > 1:
        raise UsageError(f"{key}= given twice")
    return values[0] if values else default


EXPORT_OPTIONS = ("exportable", "data_license")


def export_policy(options: dict[str, list[str]]) -> dict[str, object]:
    """`exportable=0|1` and `data_license=<spdx or text>` as catalogue fields (taken out of
    `options`): stored with the model, so dumps honour them after restarts and removal."""
    fields: dict[str, object] = {}
    exportable = one(options, "exportable")
    if exportable is not None:
        if exportable.lower() not in ("0", "1", "true", "false", "yes", "no"):
            raise UsageError(f"exportable= must be 0 or 1, got {shown(exportable)}")
        fields["exportable"] = exportable.lower() in ("1", "true", "yes")
    licence = one(options, "data_license")
    if licence is not None:
        if len(licence) > 200 or not licence.isprintable():
            raise UsageError("data_license= must be an SPDX id or a short text (up to 200)")
        fields["data_license"] = licence
    for key in EXPORT_OPTIONS:
        options.pop(key, None)
    return fields


def endpoint_spec(model_id: str, options: dict[str, list[str]]) -> ModelSpec:
    """The catalogue entry for `/addmodel id url=… model=…`."""
    allowed = {"url", "model", "title", "key_env", "vision", "context", "quota",
               *EXPORT_OPTIONS}
    unknown = set(options) - allowed
    if unknown:
        raise UsageError(f"unknown option {sorted(unknown)[0]}=")
    urls = options.get("url", [])
    served = one(options, "model")
    if not urls or not served:
        raise UsageError("url= and model= are required")
    for url in urls:
        if "@" in urlsplit(url).netloc:
            raise UsageError("url= must not carry credentials: put the key in an env var the "
                             "operator allows and name it with key_env=")
    key_env = one(options, "key_env")
    if key_env and not ENV_RE.match(key_env):
        raise UsageError("key_env= must name an environment variable, e.g. OPENAI_API_KEY")
    context = one(options, "context")
    if context is not None and whole_number(context) is None:
        raise UsageError("context= must be a number of tokens")
    data = {
        "id": model_id, "title": one(options, "title", model_id), "backend": "openai",
        "base_url": urls[0].rstrip("/"), "replicas": [u.rstrip("/") for u in urls[1:]],
        "model": served, "api_key_env": key_env,
        "vision": one(options, "vision", "0") in ("1", "true", "yes"),
    }
    if context is not None:
        data["context_window"] = int(context)
    quota = one(options, "quota")
    if quota is not None:
        data["quota"] = quota_option(quota)
    data |= export_policy(dict(options))
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        field = {"base_url": "url", "replicas": "url", "api_key_env": "key_env"}.get(
            str(first["loc"][0]) if first["loc"] else "", field)
        raise UsageError(f"{field}= {first['msg'].removeprefix('Value error, ')}") from None


def quota_option(value: str) -> dict[str, object]:
    """`quota=50/day` (also /hour, /week) → the catalogue's `{messages: 50, per: day}`."""
    number, _, per = value.partition("/")
    messages = whole_number(number, 7)
    if not messages or per not in ("hour", "day", "week"):
        raise UsageError(f"quota= must look like 50/day (or /hour, /week), got {shown(value)}")
    return {"messages": messages, "per": per}


# `/addmodel … hf=…` options and the launch request fields they set.
LAUNCH_OPTIONS = {"hf": "target", "draft": "draft", "k": "k", "gpus": "gpus",
                  "context": "max_model_len", "dtype": "dtype",
                  "trust_remote_code": "trust_remote_code"}


def launch_request(model_id: str, options: dict[str, list[str]]) -> tuple[LaunchRequest, str]:
    """`hf=… draft=… [k=4] [gpus=1] [context=…] [dtype=…] [trust_remote_code=1] [title=…]`
    as a checked launch request, and the title."""
    unknown = set(options) - set(LAUNCH_OPTIONS) - {"title"}
    if unknown:
        raise UsageError(f"unknown option {sorted(unknown)[0]}=")
    values: dict[str, object] = {"model_id": model_id}
    for option, name in LAUNCH_OPTIONS.items():
        value = one(options, option)
        if value is None:
            continue
        if name in ("k", "gpus", "max_model_len"):
            number = whole_number(value)
            if number is None:
                raise UsageError(f"{option}= must be a whole number, got {shown(value)}")
            values[name] = number
        elif name == "trust_remote_code":
            values[name] = value.lower() in ("1", "true", "yes")
        else:
            values[name] = value
    if "target" not in values or "draft" not in values:
        raise UsageError("hf= and draft= are required")
    try:
        request = LaunchRequest(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        message = str(exc)
        for option, name in LAUNCH_OPTIONS.items():
            if message.startswith(f"{name} "):
                message = f"{option}=" + message[len(name):]
                break
        raise UsageError(message) from None
    return request, one(options, "title") or model_id


def ray_launch_request(model_id: str, options: dict[str, list[str]]
                       ) -> tuple[LaunchRequest, Replicas, str]:
    """`/addmodel` for Ray Serve: the launch options plus `replicas=N` or `replicas=MIN-MAX`."""
    rest = {k: v for k, v in options.items() if k != "replicas"}
    text = one(options, "replicas")
    try:
        replicas = Replicas.parse(text) if text is not None else Replicas()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    request, title = launch_request(model_id, rest)
    return request, replicas, title
