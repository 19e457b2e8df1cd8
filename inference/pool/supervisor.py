"""Run one host's vLLM servers: start, wait for readiness, restart with backoff, stop."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from inference.pool import process
from inference.pool.argv import LaunchRequest, vllm_argv
from inference.pool.gpus import GpuPool, free_port
from inference.pool.reporting import Replica, Reporter

log = logging.getLogger(__name__)
STABLE_AFTER = 600.0  # a server up this long (s) after a restart earns a fresh backoff list


class Supervisor:
    """Owns the replicas of one agent and the GPUs they hold; reports through ``report``."""

    def __init__(
        self, report: Reporter, gpus: GpuPool, *, vllm_command: list[str], bind_host: str,
        probe_host: str, log_dir: Path | None, ready_timeout: float,
        restart_backoff: Sequence[float], poll_interval: float, stop_timeout: float,
        run_dir: Path | None = None, env_drop: frozenset[str] = frozenset(),
    ) -> None:
        self.report, self.gpus = report, gpus
        self.run_dir, self.env_drop = run_dir, env_drop
        self.vllm_command, self.bind_host, self.probe_host = vllm_command, bind_host, probe_host
        self.log_dir, self.ready_timeout = log_dir, ready_timeout
        self.restart_backoff = tuple(restart_backoff)
        self.poll_interval, self.stop_timeout = poll_interval, stop_timeout
        self.replicas: dict[str, Replica] = {}  # by registry field
        self._tasks: set[asyncio.Task[Any]] = set()

    def launch(self, rid: str, req: LaunchRequest, *, targeted: bool) -> None:
        """Take GPUs and a port and start supervising a server (or report "no free GPUs")."""
        gpus = self.gpus.allocate(req.gpus)
        if gpus is None:
            nobody = "" if targeted else "; no other pool agent took it"
            detail = (f"no free {self.gpus.unit}s on {self.report.host_name}: {req.gpus} "
                      f"needed, {len(self.gpus.free)} free of {len(self.gpus.gpu_ids)}{nobody}")
            self._spawn(self.report.emit(self.report.failure(rid, req.model_id, detail)))
            return
        port = free_port(self.bind_host)
        name = re.sub(r"[^\w.-]", "_", f"{req.model_id}-{self.report.host_name}-{port}.log")
        rep = Replica(rid, req, gpus, port, self.log_dir / name if self.log_dir else None)
        self.replicas[self.report.field(rep)] = rep
        rep.task = self._spawn(self._supervise(rep))

    async def stop_model(self, rid: str, model_id: object, *, targeted: bool) -> None:
        """Stop every replica of ``model_id``; "failed" if a named host has none."""
        reps = [r for r in self.replicas.values() if r.req.model_id == model_id]
        if not reps and targeted:
            detail = f"{self.report.host_name} runs no replica of {model_id}"
            await self.report.emit(self.report.failure(rid, model_id, detail))
        await asyncio.gather(*(self._stop(r, rid, f"stopped by request {rid}") for r in reps))

    async def aclose(self, detail: str) -> None:
        """Stop all servers and wait for pending reports."""
        await asyncio.gather(*(self._stop(r, None, detail) for r in list(self.replicas.values())),
                             return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.stop_timeout + 5)

    async def _start(self, rep: Replica) -> None:
        """Start the server and wait until it is ready (raises NotReady or OSError)."""
        argv = vllm_argv(self.vllm_command, rep.req, rep.port, self.bind_host)
        cuda = self.gpus.device == "cuda"
        rep.proc, rep.log_offset = await process.spawn(
            argv, rep.gpus if cuda else None, rep.log_path, cwd=self.run_dir,
            env_drop=self.env_drop)
        if rep.state == "launching":
            where = f"GPUs {','.join(map(str, rep.gpus))}" if cuda else "the CPU"
            await self._set_state(rep, "launching", f"vllm serve {rep.req.target} on {where} "
                                  f"(pid {rep.proc.pid}); waiting for it to be ready")
        else:
            await self.report.put(rep)
        try:
            await process.wait_ready(
                rep.proc, f"http://{self.probe_host}:{rep.port}", str(rep.req.served_name),
                limit=self.ready_timeout, interval=self.poll_interval,
                log_path=rep.log_path, log_offset=rep.log_offset)
        except process.NotReady:
            await process.terminate(rep.proc, self.stop_timeout)
            raise

    async def _supervise(self, rep: Replica) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                await self._start(rep)
            except (process.NotReady, OSError) as exc:
                return await self._finish(rep, "failed", self._reason(exc))
            await self._set_state(rep, "ready", f"serving {rep.req.served_name}")
            attempt, tries = 0, len(self.restart_backoff)
            while True:
                up_since = loop.time()
                assert rep.proc is not None
                code = await rep.proc.wait()
                process.signal_group(rep.proc.pid, signal.SIGKILL)  # leftover workers
                if rep.stopping:
                    return
                attempt = 0 if loop.time() - up_since >= STABLE_AFTER else attempt
                detail = f"vllm exited with code {code}"
                while True:
                    if attempt >= tries:
                        return await self._finish(
                            rep, "failed", f"{detail}; gave up after {tries} restarts")
                    delay = self.restart_backoff[attempt]
                    attempt += 1
                    await self._set_state(
                        rep, "restarting", f"{detail}; restart {attempt}/{tries} in {delay:g}s")
                    await asyncio.sleep(delay)
                    try:
                        await self._start(rep)
                        break
                    except (process.NotReady, OSError) as exc:
                        detail = self._reason(exc)
                await self._set_state(rep, "ready", f"serving {rep.req.served_name} again "
                                      f"(restart {attempt}/{tries})")
        except Exception as exc:
            log.exception("pool agent: supervising %s failed", self.report.field(rep))
            await self._finish(rep, "failed", f"pool agent error: {exc!r}")

    async def _stop(self, rep: Replica, rid: str | None, detail: str) -> None:
        if self.replicas.get(self.report.field(rep)) is not rep:
            return  # already finishing
        rep.stopping = True
        task = rep.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait({task})
        launching = rep.state == "launching"
        if launching:  # whoever waits for the launch learns that it will not be ready
            await self.report.emit(self.report.event(
                rep, "failed", f"stopped before it was ready: {detail}"))
        await self._finish(rep, "stopped", detail, rid, emit=rid is not None or not launching)

    async def _finish(self, rep: Replica, state: str, detail: str, rid: str | None = None,
                      *, emit: bool = True) -> None:
        """Stop the process, free its GPUs, drop it from the registry and report ``state``."""
        field = self.report.field(rep)
        if self.replicas.get(field) is not rep:
            return
        del self.replicas[field]
        rep.stopping = True
        if rep.proc is not None:
            await process.terminate(rep.proc, self.stop_timeout)
        self.gpus.release(rep.gpus)
        rep.state = state
        self.report.targets(list(self.replicas.values()))
        await self.report.drop(field)
        if emit:
            await self.report.emit(self.report.event(rep, state, detail, rid))

    async def _set_state(self, rep: Replica, state: str, detail: str) -> None:
        rep.state = state
        await self.report.put(rep)
        self.report.targets(list(self.replicas.values()))
        await self.report.emit(self.report.event(rep, state, detail))

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, process.NotReady):
            return str(exc)
        return f"cannot start {self.vllm_command[0]}: {exc}"

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
