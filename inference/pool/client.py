"""The bot's side of the GPU pool: send launch/stop commands, follow their progress events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from inference.pool.argv import LaunchRequest
from inference.pool.protocol import (
    COMMANDS_MAXLEN,
    TERMINAL,
    PoolKeys,
    decode,
    encode,
    new_request_id,
    request_id_ms,
    text,
)


class PoolClient:
    """Commands to the pool agents over Redis (see :mod:`inference.pool.protocol`)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = PoolKeys(prefix)

    async def _send(self, command: dict[str, Any]) -> str:
        sec, usec = await self.redis.time()
        request_id = new_request_id(sec * 1000 + usec // 1000)
        command = {**command, "request_id": request_id}
        await self.redis.xadd(self.keys.commands, encode(command), maxlen=COMMANDS_MAXLEN,
                              approximate=True)
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
        self, request_id: str, wait: float, *, after: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events of ``request_id``, from its start, until a terminal state or ``wait`` seconds.

        Terminal states are "ready", "failed" and "stopped". Each event carries its log stream
        id as ``event_id``; pass it as ``after`` to follow the request further (e.g. its
        "restarting" and "ready" after a crash).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
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
                    event = decode(fields)
                    if event.get("request_id") != request_id:
                        continue
                    yield {**event, "event_id": last}
                    if event.get("state") in TERMINAL:
                        return

    async def replicas(self) -> list[dict[str, Any]]:
        """Every replica the agents run (any state), from the registry hash."""
        raw = await self.redis.hgetall(self.keys.replicas)
        return [json.loads(value) for value in raw.values()]

    async def agents(self) -> list[dict[str, Any]]:
        """The agents' last heartbeats: host, gpus, free, replicas, ts."""
        raw = await self.redis.hgetall(self.keys.agents)
        return [json.loads(value) for value in raw.values()]
