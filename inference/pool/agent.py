"""`chatmux pool-agent`: launch and supervise vLLM servers on this host's GPUs, on Redis commands.

See :mod:`inference.pool.protocol` for the keys and payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from inference.pool import process
from inference.pool.argv import LaunchRequest, is_local_path, local_path_allowed, vllm_command
from inference.pool.gpus import GpuPool, parse_gpus
from inference.pool.protocol import CLOCK_SKEW, TTL, Forged, PoolAuth, PoolKeys, text
from inference.pool.reporting import Reporter
from inference.pool.supervisor import Supervisor

__all__ = ["PoolAgent", "parse_gpus", "run_agent"]
log = logging.getLogger(__name__)
DEFAULT_LOG_DIR = Path(tempfile.gettempdir()) / "chatmux-pool"


class PoolAgent:
    """Takes launch/stop commands for this host from Redis and runs the vLLM servers."""

    def __init__(
        self, redis: Redis, *, prefix: str, auth: PoolAuth, host_name: str,
        gpus: list[int] | GpuPool, vllm_bin: str | list[str], bind_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        models_dir: str | Path | None = None, trust_remote_code: Iterable[str] = (),
        env_drop: Iterable[str] = (),
        ready_timeout: float = 600, restart_backoff: Sequence[float] = (1, 2, 5, 10, 30),
        log_dir: str | Path | None = DEFAULT_LOG_DIR, targets_file: str | Path | None = None,
        poll_interval: float = 0.5, stop_timeout: float = 10.0, claim_grace: float = 2.0,
        max_command_age: float = 3600.0, heartbeat_interval: float = 10.0,
    ) -> None:
        self._redis, self.keys, self.host_name = redis, PoolKeys(prefix), host_name
        self.auth = auth
        self.gpus = gpus if isinstance(gpus, GpuPool) else GpuPool(gpus)
        self.models_dir = str(models_dir) if models_dir is not None else None
        self.trust_remote_code = frozenset(trust_remote_code)
        wildcard = bind_host in ("0.0.0.0", "::", "")
        advertise = advertise_host or (host_name if wildcard else bind_host)
        self.report = Reporter(redis, self.keys, auth, host_name, advertise,
                               Path(targets_file) if targets_file is not None else None)
        # vLLM runs in an empty directory of its own: `org/name` is never read as a folder.
        self._run_dir = Path(tempfile.mkdtemp(prefix="chatmux-vllm-"))
        self.servers = Supervisor(
            self.report, self.gpus,
            vllm_command=vllm_command(vllm_bin) if isinstance(vllm_bin, str) else vllm_bin,
            bind_host=bind_host,
            probe_host="127.0.0.1" if wildcard else bind_host,
            log_dir=Path(log_dir) if log_dir is not None else None,
            ready_timeout=ready_timeout, restart_backoff=restart_backoff,
            poll_interval=poll_interval, stop_timeout=stop_timeout,
            run_dir=self._run_dir, env_drop=frozenset(env_drop))
        self.claim_grace, self.max_command_age = claim_grace, max_command_age
        self._seen: dict[str, float] = {}  # request ids acted on, until their commands expire
        self.heartbeat_interval = heartbeat_interval
        self._group = f"agent:{host_name}"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._set_up = self._closed = False
        self._run_task: asyncio.Task[Any] | None = None

    async def setup(self) -> None:
        """Join the command stream (new commands only) and drop this host's stale replicas."""
        if self._set_up:
            return
        await self._ensure_group()
        for field, raw in (await self._redis.hgetall(self.keys.replicas)).items():
            try:
                old = self.auth.open_json("replica", raw)
            except Forged as exc:  # not written by an agent: never act on it
                log.warning("pool agent: dropping replica entry %s (%s)", text(field), exc)
                await self.report.drop(text(field))
                continue
            if old.get("host") == self.host_name and text(field) not in self.servers.replicas:
                pid, port = old.get("pid"), old.get("port")
                killed = isinstance(pid, int) and isinstance(port, int) and process.kill_stale(
                    pid, port)
                await self.report.drop(text(field))
                await self.report.emit({**old, "state": "stopped", "detail": "the pool agent "
                                        "restarted" + ("; killed its server" if killed else "")})
        self.report.targets([])
        await self.report.heartbeat(self.gpus, 0)
        self._set_up = True

    async def run(self) -> None:
        """Handle commands until cancelled; then stop every server (see :meth:`aclose`)."""
        self._run_task = asyncio.current_task()
        try:
            await self.setup()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._command_loop())
                group.create_task(self._heartbeat_loop())
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop taking commands and stop all servers of this agent."""
        if self._closed:
            return
        self._closed = True
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            self._run_task.cancel()
        for task in self._tasks:
            task.cancel()
        await self.servers.aclose("the pool agent is shutting down")
        await self.report.leave()
        shutil.rmtree(self._run_dir, ignore_errors=True)

    def replicas(self) -> list[dict[str, Any]]:
        """This agent's replicas, as in the registry hash."""
        return [self.report.describe(r) for r in self.servers.replicas.values()]

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.keys.commands, self._group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _command_loop(self) -> None:
        last = "0"  # first our own unacknowledged commands (left by a crash), then new ones
        while True:
            try:
                reply = await self._redis.xreadgroup(
                    self._group, self.host_name, {self.keys.commands: last}, count=16, block=1000)
                entries = reply[0][1] if reply else []
                if last == "0" and not entries:
                    last = ">"
                for msg_id, fields in entries:
                    try:
                        command = self.auth.open("command", fields)
                    except Forged as exc:
                        log.warning("pool agent: ignored command %s (%s)", text(msg_id), exc)
                        command = None
                    try:
                        if command is not None:
                            await self._handle(text(msg_id), command)
                    except Exception:
                        log.exception("pool agent: command %s failed", text(msg_id))
                    await self._redis.xack(self.keys.commands, self._group, msg_id)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group()  # the stream was deleted under us
            except (RedisError, OSError) as exc:
                log.warning("pool agent: reading commands failed (%s); retrying", exc)
                await asyncio.sleep(1)

    async def _handle(self, msg_id: str, cmd: dict[str, Any]) -> None:
        rid, host, op = cmd.get("request_id"), cmd.get("host"), cmd.get("op")
        if not isinstance(rid, str) or (host is not None and host != self.host_name):
            return
        sec, usec = await self._redis.time()
        age = sec + usec / 1e6 - int(msg_id.split("-")[0]) / 1000
        if age > self.max_command_age:
            log.warning("pool agent: ignoring %s command %s queued %.0fs ago", op, rid, age)
        elif not await self._first_time(rid):
            log.warning("pool agent: ignored a replayed %s command %s", op, rid)
        elif op == "launch":
            await self._on_launch(rid, cmd, targeted=host is not None)
        elif op == "stop":
            self._spawn(self.servers.stop_model(rid, cmd.get("model_id"),
                                                targeted=host is not None))
        else:
            log.warning("pool agent: unknown command %r (%s)", op, rid)

    async def _claim(self, rid: str) -> bool:
        return bool(await self._redis.set(self.keys.claim(rid), self.host_name, nx=True,
                                          ex=86400))

    async def _first_time(self, rid: str) -> bool:
        """Whether this agent has not acted on request `rid` before (in this run or, through
        Redis, a previous one): a replayed command is not acted on twice."""
        now = time.monotonic()
        self._seen = {r: t for r, t in self._seen.items() if t > now}
        if rid in self._seen:
            return False
        self._seen[rid] = now + TTL["command"] + CLOCK_SKEW
        return bool(await self._redis.set(self.keys.seen(self.host_name, rid), "1", nx=True,
                                          ex=int(TTL["command"] + CLOCK_SKEW)))

    async def _refusal(self, req: LaunchRequest) -> str | None:
        """Why this agent will not run `req` (its own rules), or None."""
        if req.gpus > self.gpus.max_tensor_parallel:
            if self.gpus.device == "cpu":
                return (f"{self.host_name} is a CPU host: one server takes one slot (gpus=1); "
                        f"{req.gpus} were asked for")
            return (f"{self.host_name} has {len(self.gpus.gpu_ids)} GPU(s); "
                    f"{req.gpus} were asked for")
        for ref in req.models:
            if is_local_path(ref):
                why = await asyncio.to_thread(local_path_allowed, ref, self.models_dir)
                if why:
                    return why
        if req.trust_remote_code:
            denied = [m for m in req.models if m not in self.trust_remote_code]
            if denied:
                return (f"trust_remote_code is not allowed for {denied[0]} on {self.host_name} "
                        "(the agent's POOL_TRUST_REMOTE_CODE lists the models that may)")
        return None

    async def _on_launch(self, rid: str, cmd: dict[str, Any], *, targeted: bool) -> None:
        try:
            req = LaunchRequest.from_dict(cmd)
        except ValueError as exc:
            if targeted or await self._claim(rid):
                await self.report.emit(self.report.failure(rid, cmd.get("model_id"), str(exc)))
            return
        refusal = await self._refusal(req)
        if targeted:
            if refusal:
                await self.report.emit(self.report.failure(rid, req.model_id, refusal))
            else:
                self.servers.launch(rid, req, targeted=True)
        elif refusal is None and len(self.gpus.free) >= req.gpus:
            if await self._claim(rid):
                self.servers.launch(rid, req, targeted=False)
        else:  # leave it to an agent that can; report why not if none takes it
            self._spawn(self._launch_later(rid, req, refusal))

    async def _launch_later(self, rid: str, req: LaunchRequest, refusal: str | None) -> None:
        await asyncio.sleep(self.claim_grace)
        if not await self._claim(rid):
            return
        if refusal:
            await self.report.emit(self.report.failure(
                rid, req.model_id, f"{refusal}; no other pool agent took it"))
        else:
            self.servers.launch(rid, req, targeted=False)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.report.heartbeat(self.gpus, len(self.servers.replicas))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def run_agent(
    redis_url: str, prefix: str, gpus: list[int] | GpuPool, vllm_bin: str, *, auth: PoolAuth,
    vllm_python: str | None = None, host_name: str | None = None, **options: Any,
) -> None:
    """Run a pool agent until SIGTERM/SIGINT or cancellation (the `chatmux pool-agent` command).

    ``vllm_python``: a Python with vLLM installed, started as a module instead of ``vllm_bin``.
    ``options`` are :class:`PoolAgent`'s keyword arguments (bind_host, advertise_host, …).
    """
    if vllm_python:
        found = shutil.which(vllm_python)
        if found is None:
            raise ValueError(f"VLLM_PYTHON {vllm_python!r} not found")
        command = vllm_command(vllm_bin, found)
    else:
        found = shutil.which(vllm_bin)
        if found is None:
            raise ValueError(f"vllm executable {vllm_bin!r} not found (give a path or fix "
                             "PATH, or set VLLM_PYTHON)")
        command = vllm_command(found)
    redis = Redis.from_url(redis_url)
    agent = PoolAgent(redis, prefix=prefix, auth=auth,
                      host_name=host_name or socket.gethostname(), gpus=gpus,
                      vllm_bin=command, **options)
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(agent.run())
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, runner.cancel)
    try:
        await runner
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled, not stopped by SIGTERM
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)
        await redis.aclose()
