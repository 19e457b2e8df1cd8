"""The first-run check: can any model answer, why not, and which local servers could."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from inference import local_servers
from inference.catalogue import ModelSpec
from inference.local_servers import LocalServer, detect_local_servers
from inference.reachability import CHECK_TIMEOUT, Verdict, diagnose
from inference.registry import ModelRegistry

log = logging.getLogger(__name__)
CACHE_TTL = 30.0  # seconds a check is reused (an admin pressing /start twice waits once)


@dataclass(frozen=True, slots=True)
class FirstRunReport:
    verdicts: tuple[Verdict, ...]  # every enabled chat model, in catalogue order
    servers: tuple[LocalServer, ...]  # model servers found on this machine's usual ports
    taken_ids: tuple[str, ...]  # the catalogue's ids (suggested entries avoid them)

    @property
    def any_reachable(self) -> bool:
        return any(v.reachable for v in self.verdicts)


class FirstRunCheck:
    """Runs the check at most once per `ttl` seconds; callers at the same time share one run."""

    def __init__(self, registry: ModelRegistry, *, ttl: float = CACHE_TTL,
                 timeout: float = CHECK_TIMEOUT, host: str = "127.0.0.1",
                 ports: Sequence[tuple[str, int]] | None = None,
                 pool_agents: Callable[[], Awaitable[int]] | None = None) -> None:
        """`pool_agents`: how many pool agents are alive (None: no GPU pool configured)."""
        self.registry = registry
        self.pool_agents = pool_agents
        self.ttl = ttl
        self.timeout = timeout
        self.host = host
        self.ports = tuple(local_servers.USUAL_PORTS if ports is None else ports)
        self._task: asyncio.Task[FirstRunReport] | None = None
        self._at = 0.0

    async def _run(self) -> FirstRunReport:
        specs = self.registry.enabled()
        verdicts, servers = await asyncio.gather(
            diagnose(specs, self.registry.keys, self.timeout),
            detect_local_servers(self.host, self.ports, self.timeout))
        verdicts = await self._blame_the_pool(specs, verdicts)
        return FirstRunReport(tuple(verdicts), tuple(servers),
                              tuple(m.id for m in self.registry.all()))

    async def _blame_the_pool(self, specs: Sequence[ModelSpec],
                              verdicts: list[Verdict]) -> list[Verdict]:
        """A model launched on the GPU pool that cannot be reached, while no pool agent is
        alive, is down because of that."""
        launched = {s.id for s in specs if self._pool_launched(s)}
        if self.pool_agents is None or not any(
                v.model_id in launched and not v.reachable for v in verdicts):
            return verdicts
        try:
            async with asyncio.timeout(self.timeout):
                alive = await self.pool_agents()
        except Exception as exc:  # Redis down: the connection reasons stand
            log.warning("first-run check: could not count pool agents (%s)", exc)
            return verdicts
        if alive:
            return verdicts
        return [dataclasses.replace(v, reason="no_pool_agent")
                if v.model_id in launched and not v.reachable else v for v in verdicts]

    def _pool_launched(self, spec: ModelSpec) -> bool:
        """Added with `/addmodel … hf=` (a pool agent's vLLM with a draft model)."""
        return (spec.backend == "vllm" and spec.speculative is not None
                and spec.ray_serve is None and not self.registry.in_file(spec.id))

    async def report(self) -> FirstRunReport:
        """The latest check, run again when older than `ttl` (or when the last one failed)."""
        task = self._task
        stale = time.monotonic() - self._at > self.ttl
        if task is None or (task.done() and (stale or task.cancelled()
                                             or task.exception() is not None)):
            self._task = task = asyncio.create_task(self._run())
            self._at = time.monotonic()
        # A caller that gives up (its update cancelled) leaves the run to the others.
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop a check still running (the process is closing)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])
