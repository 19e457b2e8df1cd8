"""Why a catalogue model cannot answer: a quick check of each one, for the first-run guide.

Each enabled model is checked concurrently with a short timeout: its API key variable is set
(named, never shown), its server answers `GET /models` (through the `openai` client) and lists
the served name, or, for `backend: hf`, the local engine is installed and the checkpoint
directories exist. Nothing is sent to a model; keys go only where the catalogue grants them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import openai

from inference.catalogue import ModelSpec
from inference.keys import KeyRefused, KeyRing, origin

CHECK_TIMEOUT = 2.0  # seconds for one server's answer
SHOWN_SERVED = 3  # served names quoted when the model is not among them

Reason = Literal["ok", "no_key", "key_not_allowed", "refused", "dns", "timeout",
                 "key_rejected", "unknown_model", "http_error", "no_engine", "no_files",
                 "no_pool_agent"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One model's state. `detail` depends on `reason`: the key's variable name (no_key,
    key_not_allowed, key_rejected), `host:port` (refused, dns, timeout, http_error: with the
    status), the first served names (unknown_model) or the missing path (no_files)."""

    model_id: str
    title: str
    reason: Reason
    detail: str = ""
    served: tuple[str, ...] = ()  # unknown_model: what the server lists (the first few)

    @property
    def reachable(self) -> bool:
        return self.reason == "ok"


def serves(listed: Iterable[str], model: str) -> bool:
    """Whether a server listing `listed` answers to `model` (Ollama lists `name:latest` and
    answers to `name`)."""
    names = set(listed)
    return model in names or (":" not in model and f"{model}:latest" in names)


def _where(url: str) -> str:
    host, port = origin(url)
    return f"{host}:{port}"


def connection_reason(exc: BaseException) -> Reason:
    """refused, dns or timeout, from an `openai` connection error's causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "dns"
        if isinstance(seen, ConnectionRefusedError):
            return "refused"
        if isinstance(seen, TimeoutError):
            return "timeout"
        seen = seen.__cause__ or seen.__context__
    return "timeout" if isinstance(exc, openai.APITimeoutError) else "refused"


class NotOpenAICompatible(Exception):
    """The server answered `GET /models` with something that is not a model list."""


async def list_served(base_url: str, api_key: str | None,
                      wait: float = CHECK_TIMEOUT) -> list[openai.types.Model]:
    """`GET {base_url}/models` with one short timeout and no retries. Raises `openai` errors,
    `TimeoutError` when the whole exchange took too long, `NotOpenAICompatible`."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "no-key", max_retries=0,
                                timeout=openai.Timeout(wait, connect=wait))
    try:
        async with asyncio.timeout(wait + 0.5):
            page = await client.models.list()
    except (AttributeError, TypeError, ValueError) as exc:  # HTML, or JSON of another shape
        raise NotOpenAICompatible(base_url) from exc
    finally:
        await client.close()
    listed = list(page.data or [])
    if not all(isinstance(m, openai.types.Model) and isinstance(m.id, str) for m in listed):
        raise NotOpenAICompatible(base_url)
    return listed


async def _check_url(spec: ModelSpec, url: str, key: str | None,
                     wait: float) -> Verdict:
    def verdict(reason: Reason, detail: str = "", served: Sequence[str] = ()) -> Verdict:
        return Verdict(spec.id, spec.title, reason, detail, tuple(served))

    try:
        listed = [m.id for m in await list_served(url, key, wait)]
    except openai.APIStatusError as exc:
        if exc.status_code in (401, 403):
            return verdict("key_rejected", spec.api_key_env or "")
        return verdict("http_error", f"{_where(url)} (HTTP {exc.status_code})")
    except openai.APIConnectionError as exc:  # APITimeoutError too
        return verdict(connection_reason(exc), _where(url))
    except TimeoutError:
        return verdict("timeout", _where(url))
    except (openai.OpenAIError, NotOpenAICompatible):  # not an OpenAI-compatible answer
        return verdict("http_error", _where(url))
    if serves(listed, spec.model):
        return verdict("ok", _where(url))
    return verdict("unknown_model", spec.model, listed[:SHOWN_SERVED])


def _check_local(spec: ModelSpec) -> Verdict:
    from inference.local import engine_installed

    if not engine_installed():
        return Verdict(spec.id, spec.title, "no_engine")
    for path in (spec.path, spec.draft_path):
        if path and not Path(path).is_dir():
            return Verdict(spec.id, spec.title, "no_files", path)
    return Verdict(spec.id, spec.title, "ok")


async def check_model(spec: ModelSpec, keys: KeyRing, wait: float = CHECK_TIMEOUT) -> Verdict:
    """Whether `spec` can answer now, and if not, why (see `Verdict`)."""
    if spec.backend == "hf":
        return await asyncio.to_thread(_check_local, spec)  # imports and stats: off the loop
    try:
        key = keys.key_for(spec)
    except KeyRefused:
        return Verdict(spec.id, spec.title, "key_not_allowed", spec.api_key_env or "")
    if spec.api_key_env and not key:
        return Verdict(spec.id, spec.title, "no_key", spec.api_key_env)
    # A replica set is reachable when one replica is; otherwise the first one's problem.
    verdicts = await asyncio.gather(*(_check_url(spec, url, key, wait) for url in spec.urls))
    return next((v for v in verdicts if v.reachable), verdicts[0])


async def diagnose(specs: Iterable[ModelSpec], keys: KeyRing,
                   wait: float = CHECK_TIMEOUT) -> list[Verdict]:
    """Every model of `specs` checked at once, in their order."""
    return list(await asyncio.gather(*(check_model(s, keys, wait) for s in specs)))
