"""Model servers running on this machine on their usual ports, and catalogue entries for them.

Ollama (11434), llama.cpp's llama-server (8080) and vLLM (8000) all serve the OpenAI-compatible
`GET /v1/models`; a port that answers it with a model list is a server, and each model it lists
becomes a ready-to-paste `models:` entry of the catalogue (see inference/catalogue.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import openai
import yaml

from inference.reachability import CHECK_TIMEOUT, NotOpenAICompatible, list_served

# (kind, port): where each server listens unless told otherwise.
USUAL_PORTS: tuple[tuple[str, int], ...] = (("ollama", 11434), ("llama.cpp", 8080),
                                            ("vllm", 8000))
TITLES = {"ollama": "Ollama", "llama.cpp": "llama.cpp", "vllm": "vLLM"}
MODELS_PER_SERVER = 3  # entries offered for one server (Ollama may hold dozens of models)


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    context_window: int | None = None  # vLLM's `max_model_len`, when the server says


@dataclass(frozen=True, slots=True)
class LocalServer:
    kind: str  # a key of TITLES
    base_url: str  # http://127.0.0.1:11434/v1
    models: tuple[ServedModel, ...] = field(default_factory=tuple)


def _context(model: openai.types.Model) -> int | None:
    value = (model.model_extra or {}).get("max_model_len")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def _probe(kind: str, host: str, port: int, wait: float) -> LocalServer | None:
    base_url = f"http://{host}:{port}/v1"
    try:
        listed = await list_served(base_url, None, wait)
    except (openai.OpenAIError, TimeoutError, NotOpenAICompatible):
        return None  # nothing there, or not an OpenAI-compatible server
    models = tuple(ServedModel(m.id, _context(m)) for m in listed if isinstance(m.id, str))
    return LocalServer(kind, base_url, models)


async def detect_local_servers(host: str = "127.0.0.1",
                               ports: Sequence[tuple[str, int]] = USUAL_PORTS,
                               wait: float = CHECK_TIMEOUT) -> list[LocalServer]:
    """The servers answering on `ports` of `host`, all asked at once, in the order of `ports`."""
    found = await asyncio.gather(*(_probe(kind, host, port, wait) for kind, port in ports))
    return [server for server in found if server is not None]


def _model_id(name: str, taken: set[str]) -> str:
    """A catalogue id from a served name (`llama3.2:latest` → `llama3.2`), not yet taken."""
    base = re.sub(r"(:latest|\.gguf)$", "", name.rsplit("/", 1)[-1], flags=re.IGNORECASE)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:36] or "local"
    if not base[0].isalnum():
        base = f"m{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def catalogue_entries(servers: Sequence[LocalServer], taken: Sequence[str] = (),
                      per_server: int = MODELS_PER_SERVER) -> list[dict[str, object]]:
    """Catalogue entries for the first `per_server` models of each server; ids avoid `taken`
    (the catalogue's own)."""
    ids = set(taken)
    entries: list[dict[str, object]] = []
    for server in servers:
        for model in server.models[:per_server]:
            entry: dict[str, object] = {
                "id": _model_id(model.name, ids),
                "title": f"{model.name} ({TITLES.get(server.kind, server.kind)})"[:60],
                "backend": "vllm" if server.kind == "vllm" else "openai",
                "base_url": server.base_url,
                "model": model.name,
            }
            if model.context_window:
                entry["context_window"] = model.context_window
            entries.append(entry)
    return entries


def catalogue_lines(entries: Sequence[dict[str, object]]) -> str:
    """`entries` as YAML list items indented to go under `models:` (as in models.example.yaml)."""
    text = yaml.safe_dump(list(entries), sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=200)
    return "".join(f"  {line}\n" for line in text.splitlines())
