"""Redis keys, payloads and event states shared by the pool agents and the bot.

Keys under ``{prefix}:pool:``
  commands            stream, field ``data`` = JSON command; every agent reads it in its own
                      consumer group ``agent:{host}`` (new entries only) and acks after handling
  claim:{request_id}  SET NX (1 day) claim of a launch that names no host; value = the host
  events              pub/sub channel of JSON events
  events:log          stream, field ``data`` = the same JSON events (catch-up for late readers)
  replicas            hash ``{model_id}@{host}:{port}`` -> JSON replica (model_id, base_url,
                      served_name, target, draft, speculative_config, gpus, host, port, pid,
                      state, request_id, log)
  agents              hash ``{host}`` -> JSON heartbeat (host, gpus, free, replicas, ts)

Commands: ``{"op": "launch", "request_id", "host": str | null, "model_id", "target", "draft",
"k", "gpus", "served_name", "max_queued", "extra_args"}`` and ``{"op": "stop", "request_id",
"host": str | null, "model_id"}``. Events: ``{"request_id", "model_id", "host", "state",
"base_url", "gpus", "detail", "pid", "ts"}`` with a state from :data:`STATES`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

STATES = ("launching", "ready", "failed", "stopped", "restarting")
TERMINAL = frozenset({"ready", "failed", "stopped"})
COMMANDS_MAXLEN = 1000  # approximate trimming of the streams
EVENTS_MAXLEN = 10_000
_REQUEST_ID_RE = re.compile(r"^(\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class PoolKeys:
    prefix: str

    @property
    def commands(self) -> str:
        return f"{self.prefix}:pool:commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}:pool:events"

    @property
    def events_log(self) -> str:
        return f"{self.prefix}:pool:events:log"

    @property
    def replicas(self) -> str:
        return f"{self.prefix}:pool:replicas"

    @property
    def agents(self) -> str:
        return f"{self.prefix}:pool:agents"

    def claim(self, request_id: str) -> str:
        return f"{self.prefix}:pool:claim:{request_id}"


def text(value: bytes | str) -> str:
    """Redis replies are bytes unless the client decodes them."""
    return value.decode() if isinstance(value, bytes) else value


def encode(data: dict[str, Any]) -> dict[str, str]:
    """Stream entry fields for a JSON object."""
    return {"data": json.dumps(data)}


def decode(fields: dict[Any, Any] | None) -> dict[str, Any]:
    """The JSON object in a stream entry's ``data`` field ({} if absent or malformed)."""
    fields = fields or {}
    raw = fields.get(b"data", fields.get("data"))
    try:
        data = json.loads(text(raw)) if raw is not None else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def new_request_id(redis_ms: int) -> str:
    """A request id that starts with the Redis clock (ms), so its events can be found by time."""
    return f"{redis_ms}-{uuid.uuid4().hex[:12]}"


def request_id_ms(request_id: str) -> int | None:
    """The Redis-clock millisecond time embedded in a request id, if any."""
    match = _REQUEST_ID_RE.match(request_id)
    return int(match.group(1)) if match else None
