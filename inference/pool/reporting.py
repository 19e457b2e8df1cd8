"""What a pool agent tells the others: replica registry, progress events, heartbeat, targets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from inference.pool.argv import LaunchRequest
from inference.pool.gpus import GpuPool
from inference.pool.process import Process
from inference.pool.protocol import EVENTS_MAXLEN, PoolAuth, PoolKeys

log = logging.getLogger(__name__)


@dataclass
class Replica:
    """One server an agent runs (or is starting) for a launch request."""

    request_id: str
    req: LaunchRequest
    gpus: list[int]
    port: int
    log_path: Path | None
    proc: Process | None = None
    log_offset: int = 0
    state: str = "launching"
    stopping: bool = False
    task: asyncio.Task[None] | None = None


def _write_targets(path: Path, targets: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(targets, indent=1))
    os.replace(tmp, path)


class Reporter:
    """Writes an agent's replicas, events and heartbeat to Redis, each sealed with the pool's
    secret; Redis errors only log."""

    def __init__(self, redis: Redis, keys: PoolKeys, auth: PoolAuth, host_name: str,
                 advertise_host: str, targets_file: Path | None = None) -> None:
        self._redis, self.keys, self.auth, self.host_name = redis, keys, auth, host_name
        self.advertise_host, self.targets_file = advertise_host, targets_file

    def field(self, rep: Replica) -> str:
        """The registry hash field of a replica: ``{model_id}@{host}:{port}``."""
        return f"{rep.req.model_id}@{self.host_name}:{rep.port}"

    def describe(self, rep: Replica) -> dict[str, Any]:
        req = rep.req
        return {
            "model_id": req.model_id, "base_url": f"http://{self.advertise_host}:{rep.port}/v1",
            "served_name": req.served_name, "target": req.target, "draft": req.draft,
            "speculative_config": req.speculative_config, "gpus": rep.gpus,
            "host": self.host_name, "port": rep.port, "pid": rep.proc.pid if rep.proc else None,
            "state": rep.state, "request_id": rep.request_id,
            "log": str(rep.log_path) if rep.log_path else None,
        }

    def event(self, rep: Replica, state: str, detail: str, rid: str | None = None) -> dict:
        info = self.describe(rep)
        return {"request_id": rid or rep.request_id, "model_id": rep.req.model_id,
                "host": self.host_name, "state": state, "base_url": info["base_url"],
                "gpus": rep.gpus, "detail": detail, "pid": info["pid"]}

    def failure(self, rid: str, model_id: object, detail: str) -> dict[str, Any]:
        """A "failed" event for a request that has no replica."""
        return {"request_id": rid, "model_id": model_id, "host": self.host_name,
                "state": "failed", "base_url": None, "gpus": [], "detail": detail}

    async def put(self, rep: Replica) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hset(self.keys.replicas, self.field(rep),
                                   self.auth.seal_json("replica", self.describe(rep)))

    async def drop(self, field: str) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hdel(self.keys.replicas, field)

    async def emit(self, event: dict[str, Any]) -> None:
        """Publish an event on the channel and append it to the events log stream."""
        event = {**event, "ts": time.time()}
        log.info("pool %s %s@%s: %s", event.get("state"), event.get("model_id"),
                 event.get("host"), event.get("detail"))
        sealed = self.auth.seal("event", event)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self.keys.events_log, sealed, maxlen=EVENTS_MAXLEN,
                          approximate=True)
                pipe.publish(self.keys.events, json.dumps(sealed))
                await pipe.execute()
        except RedisError as exc:
            log.warning("pool agent: cannot publish %s event: %s", event.get("state"), exc)

    async def heartbeat(self, pool: GpuPool, replicas: int) -> None:
        beat = {"host": self.host_name, "gpus": pool.gpu_ids, "free": pool.free,
                "device": pool.device, "max_tensor_parallel": pool.max_tensor_parallel,
                "replicas": replicas, "advertise_host": self.advertise_host, "ts": time.time()}
        with contextlib.suppress(RedisError):
            await self._redis.hset(self.keys.agents, self.host_name,
                                   self.auth.seal_json("agent", beat))

    async def leave(self) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hdel(self.keys.agents, self.host_name)

    def targets(self, reps: list[Replica]) -> None:
        """Rewrite the Prometheus file_sd targets file (if any) to list ``reps``' /metrics."""
        if self.targets_file is None:
            return
        targets = [{"targets": [f"{self.advertise_host}:{r.port}"],
                    "labels": {"model_id": r.req.model_id, "host": self.host_name,
                               "served_name": str(r.req.served_name)}} for r in reps]
        try:
            _write_targets(self.targets_file, targets)
        except OSError as exc:
            log.warning("pool agent: cannot write %s: %s", self.targets_file, exc)
