"""The bot's side of the GPU pool: send signed launch/stop commands, follow genuine events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from inference.pool.argv import LaunchRequest
from inference.pool.protocol import (
    COMMANDS_MAXLEN,
    TERMINAL,
    Forged,
    PoolAuth,
    PoolKeys,
    new_request_id,
    request_id_ms,
    text,
)

log = logging.getLogger(__name__)


class PoolClient:
    """Commands to the pool agents over Redis (see :mod:`inference.pool.protocol`)."""

    def __init__(self, redis: Redis, prefix: str, auth: PoolAuth) -> None:
        self.redis = redis
        self.keys = PoolKeys(prefix)
        self.auth = auth

    async def _send(self, command: dict[str, Any]) -> str:
        sec, usec = await self.redis.time()
        request_id = new_request_id(sec * 1000 + usec // 1000)
        command = {**command, "request_id": request_id}
        await self.redis.xadd(self.keys.commands, self.auth.seal("command", command),
                              maxlen=COMMANDS_MAXLEN, approximate=True)
        return request_id

    async def launch(self, request: LaunchRequest, host: str | None = None) -> str:
        """Ask for a server (on ``host``, or on the first agent with enough free GPUs).

        Returns the request id whose progress :meth:`events` follows.
        """
        return await self._send({"op": "launch", "host": host, **request.to_dict()})

    async def stop(self, model_id: str, host: str | None = None) -> str:
        """Ask the agents (or only ``host``'s) to stop every server of ``model_id``."""
        return await self._send({"op": "stop", "host": host, "model_id": model_id})

    async def events(
        self, request_id: str, wait: float, *, after: str | None = None,
        first_within: float | None = None, claimant_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Genuine events of ``request_id``, from its start, until a terminal state or ``wait``
        seconds (or ``first_within`` seconds if no event has come by then).

        Terminal states are "ready", "failed" and "stopped". Each event carries its log stream
        id as ``event_id``; pass it as ``after`` to follow the request further (e.g. its
        "restarting" and "ready" after a crash). Unsigned, forged and expired entries are
        logged and skipped; with ``claimant_only`` (a launch), so are events from any agent
        other than the one whose event came first, the agent that claimed the launch.
        """
        claimant: str | None = None
        loop = asyncio.get_running_loop()
        end = deadline = loop.time() + wait
        if first_within is not None:
            deadline = min(end, loop.time() + first_within)
        if after is not None:
            last = after
        else:  # ids are Redis-clock times: start a second before the request was sent
            ms = request_id_ms(request_id)
            last = f"{max(ms - 1000, 0)}-0" if ms is not None else "0-0"
        while (left := deadline - loop.time()) > 0:
            found = await self.redis.xread({self.keys.events_log: last}, count=100,
                                           block=max(1, int(min(left, 5.0) * 1000)))
            for _stream, entries in found or []:
                for entry_id, fields in entries:
                    last = text(entry_id)
                    try:
                        event = self.auth.open("event", fields)
                    except Forged as exc:
                        log.warning("pool: ignored an event %s on the events log (%s)", last, exc)
                        continue
                    if event.get("request_id") != request_id:
                        continue
                    if claimant_only:
                        claimant = claimant or str(event.get("host"))
                        if event.get("host") != claimant:
                            log.warning("pool: ignored a %s event of %s from %s: %s claimed "
                                        "it", event.get("state"), request_id,
                                        event.get("host"), claimant)
                            continue
                    deadline = end
                    yield {**event, "event_id": last}
                    if event.get("state") in TERMINAL:
                        return

    async def _opened(self, key: str, kind: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(key)
        found = []
        for field, value in raw.items():
            try:
                found.append(self.auth.open_json(kind, value))
            except Forged as exc:
                log.warning("pool: ignored %s entry %s (%s)", kind, text(field), exc)
        return found

    async def replicas(self) -> list[dict[str, Any]]:
        """Every replica the agents run (any state), from the registry hash."""
        return await self._opened(self.keys.replicas, "replica")

    async def agents(self, max_age: float | None = None) -> list[dict[str, Any]]:
        """The agents' last heartbeats (host, gpus, free, replicas, advertise_host, ts); with
        ``max_age``, only those that beat within that many seconds."""
        beats = await self._opened(self.keys.agents, "agent")
        if max_age is not None:
            now = time.time()
            beats = [b for b in beats if isinstance(b.get("ts"), int | float)
                     and now - b["ts"] <= max_age]
        return beats
