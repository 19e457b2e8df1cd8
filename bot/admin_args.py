"""Parsing admin command arguments: `/addmodel id key=value …` (quotes allowed)."""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

from pydantic import ValidationError

from inference.catalogue import ModelSpec

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
REPO_RE = re.compile(r"^[\w.\-/]+$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UsageError(ValueError):
    """Malformed arguments; the message says what is wrong."""


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
        raise UsageError(f"bad model id {model_id!r}: letters, digits, . _ - (up to 40)")
    options: dict[str, list[str]] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise UsageError(f"expected key=value, got {word!r}")
        options.setdefault(key.lower(), []).append(value)
    return model_id, options


def one(options: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = options.get(key)
    if values and len(values) > 1:
        raise UsageError(f"{key}= given twice")
    return values[0] if values else default


def endpoint_spec(model_id: str, options: dict[str, list[str]]) -> ModelSpec:
    """The catalogue entry for `/addmodel id url=… model=…`."""
    allowed = {"url", "model", "title", "key_env", "vision", "context"}
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
    if context is not None and not context.isdigit():
        raise UsageError("context= must be a number of tokens")
    data = {
        "id": model_id, "title": one(options, "title", model_id), "backend": "openai",
        "base_url": urls[0].rstrip("/"), "replicas": [u.rstrip("/") for u in urls[1:]],
        "model": served, "api_key_env": key_env,
        "vision": one(options, "vision", "0") in ("1", "true", "yes"),
    }
    if context is not None:
        data["context_window"] = int(context)
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        field = {"base_url": "url", "replicas": "url", "api_key_env": "key_env"}.get(
            str(first["loc"][0]) if first["loc"] else "", field)
        raise UsageError(f"{field}= {first['msg'].removeprefix('Value error, ')}") from None


def launch_options(options: dict[str, list[str]]) -> dict[str, str | int]:
    """`hf=… draft=… [k=…] [gpus=…] [title=…]` for a pool launch."""
    allowed = {"hf", "draft", "k", "gpus", "title"}
    unknown = set(options) - allowed
    if unknown:
        raise UsageError(f"unknown option {sorted(unknown)[0]}=")
    target, draft = one(options, "hf"), one(options, "draft")
    if not target or not draft:
        raise UsageError("hf= and draft= are required")
    for repo in (target, draft):
        if not REPO_RE.match(repo):
            raise UsageError(f"bad repository name {repo!r}")
    k, gpus = one(options, "k", "4"), one(options, "gpus", "1")
    if not (k.isdigit() and 1 <= int(k) <= 32):  # type: ignore[union-attr]
        raise UsageError("k= must be 1–32")
    if not (gpus.isdigit() and int(gpus) >= 1):  # type: ignore[union-attr]
        raise UsageError("gpus= must be a positive number")
    return {"target": target, "draft": draft, "k": int(k), "gpus": int(gpus),  # type: ignore[arg-type]
            "title": one(options, "title") or ""}
