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

  seen:{host}:{request_id}  SET NX: an agent has acted on this command (replay protection)

Commands: ``{"op": "launch", "request_id", "host": str | null, "model_id", "target", "draft",
"k", "gpus", "served_name", "max_queued", "max_model_len", "dtype", "trust_remote_code"}``
and ``{"op": "stop", "request_id", "host": str | null, "model_id"}``. Events:
``{"request_id", "model_id", "host", "state", "base_url", "gpus", "detail", "pid", "ts"}``
with a state from :data:`STATES`. Heartbeats add ``advertise_host``, the address the agent's
servers are reached at.

Every command, event, heartbeat and replica entry is sealed by :class:`PoolAuth`: signed with
HMAC-SHA256 under the ``POOL_SECRET`` that the bot and the agents share, for one kind of
message, with an expiry. Whoever can write to Redis but does not hold the secret can neither
command an agent nor pass an event to the bot; an agent acts on a request id once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
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

    def seen(self, host: str, request_id: str) -> str:
        return f"{self.prefix}:pool:seen:{host}:{request_id}"


def text(value: bytes | str) -> str:
    """Redis replies are bytes unless the client decodes them."""
    return value.decode() if isinstance(value, bytes) else value


def new_request_id(redis_ms: int) -> str:
    """A request id that starts with the Redis clock (ms), so its events can be found by time."""
    return f"{redis_ms}-{uuid.uuid4().hex[:12]}"


def request_id_ms(request_id: str) -> int | None:
    """The Redis-clock millisecond time embedded in a request id, if any."""
    match = _REQUEST_ID_RE.match(request_id)
    return int(match.group(1)) if match else None


class Forged(ValueError):
    """A pool message that is unsigned, signed with another secret, of the wrong kind or
    expired; the message says which (never what it contained)."""


# How long a sealed message is valid: commands are acted on at once (or after an agent
# restart); events are read while a launch is followed; heartbeats and replica entries are
# rewritten while the agent lives.
TTL = {"command": 300.0, "event": 3600.0, "agent": 3600.0, "replica": 30 * 86400.0}
CLOCK_SKEW = 60.0  # seconds a message may seem to come from the future (hosts' clocks)


class PoolAuth:
    """Seals and opens pool messages with the shared secret (HMAC-SHA256)."""

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the pool needs POOL_SECRET (the same on the bot and the agents)")
        self._key = secret.encode() if isinstance(secret, str) else secret
        self._clock = clock

    def _sign(self, kind: str, data: str) -> str:
        message = f"chatmux-pool-v1\n{kind}\n{data}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, kind: str, payload: dict[str, Any]) -> dict[str, str]:
        """Stream entry fields ``data`` (JSON with kind, issue and expiry times) and ``sig``."""
        now = self._clock()
        body = {**payload, "kind": kind, "iat": now, "exp": now + TTL[kind]}
        data = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return {"data": data, "sig": self._sign(kind, data)}

    def seal_json(self, kind: str, payload: dict[str, Any]) -> str:
        """The sealed message as one JSON string (hash values, pub/sub messages)."""
        return json.dumps(self.seal(kind, payload))

    def open(self, kind: str, fields: dict[Any, Any] | None) -> dict[str, Any]:
        """The payload of a sealed stream entry; raises `Forged` if it is not genuine."""
        fields = fields or {}
        raw, sig = fields.get(b"data", fields.get("data")), fields.get(b"sig", fields.get("sig"))
        if raw is None or sig is None:
            raise Forged("unsigned")
        data, sig = text(raw), text(sig)
        if not hmac.compare_digest(self._sign(kind, data), sig):
            raise Forged("bad signature")
        body = json.loads(data)
        now = self._clock()
        if not isinstance(body, dict):
            raise Forged("not an object")
        if body.get("kind") != kind:
            raise Forged("wrong kind")
        if not isinstance(body.get("exp"), int | float) or body["exp"] < now:
            raise Forged("expired")
        if not isinstance(body.get("iat"), int | float) or body["iat"] > now + CLOCK_SKEW:
            raise Forged("issued in the future")
        return {k: v for k, v in body.items() if k not in ("kind", "iat", "exp")}

    def open_json(self, kind: str, value: bytes | str) -> dict[str, Any]:
        """Open a message sealed with :meth:`seal_json`."""
        try:
            fields = json.loads(text(value))
        except ValueError:
            raise Forged("not JSON") from None
        if not isinstance(fields, dict):
            raise Forged("unsigned")
        return self.open(kind, fields)
