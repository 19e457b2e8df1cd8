"""Start, watch and stop one `vllm serve` process (own process group, output to a log file)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from pathlib import Path
from typing import IO

import aiohttp

Process = asyncio.subprocess.Process
LOG_TAIL_LINES = 12
LOG_TAIL_CHARS = 1500


class NotReady(Exception):
    """The server exited, or did not answer in time, before it was ready."""


def _open_log(path: Path, argv: list[str], env_note: str) -> tuple[IO[bytes], int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = path.open("ab")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    out.write(f"--- {stamp} {env_note} {shlex.join(argv)}\n".encode())
    out.flush()
    return out, out.tell()


async def spawn(argv: list[str], gpus: list[int] | None, log_path: Path | None, *,
                cwd: Path | None = None, env_drop: frozenset[str] = frozenset(),
                ) -> tuple[Process, int]:
    """Start ``argv`` on ``gpus`` (None: a CPU host, no CUDA_VISIBLE_DEVICES); returns the
    process and where its output starts in the log.

    The process leads its own process group so that stopping it also stops vLLM's workers.
    It runs in ``cwd`` (an empty directory: a repo id is never taken for a folder there) and
    without the variables in ``env_drop`` (the agent's own secrets: a model's remote code
    runs in that process).
    """
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    note = "cpu"
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = note = ",".join(map(str, gpus))
        note = f"CUDA_VISIBLE_DEVICES={note}"
    out: IO[bytes] | int = asyncio.subprocess.DEVNULL
    offset = 0
    if log_path is not None:
        out, offset = _open_log(log_path, argv, note)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    finally:
        if not isinstance(out, int):
            out.close()
    return proc, offset


def log_tail(path: Path | None, offset: int = 0) -> str:
    """The last lines a process wrote to its log (from ``offset``), or '' without a log."""
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(max(offset, f.seek(0, os.SEEK_END) - 8192))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in data.splitlines() if line.strip()][-LOG_TAIL_LINES:]
    return "\n".join(lines)[-LOG_TAIL_CHARS:]


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid``; a gone group is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def terminate(proc: Process, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap the process."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    signal_group(proc.pid, signal.SIGKILL)  # workers left behind by the leader


def kill_stale(pid: int, port: int) -> bool:
    """Kill a server left by a previous agent run, if ``pid`` still is that server."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"--port" not in cmdline or str(port).encode() not in cmdline:
        return False
    signal_group(pid, signal.SIGKILL)
    return True


async def _answers(session: aiohttp.ClientSession, root: str, served_name: str) -> bool:
    try:
        async with session.get(f"{root}/health") as resp:
            if resp.status != 200:
                return False
        async with session.get(f"{root}/v1/models") as resp:
            if resp.status != 200:
                return False
            body = await resp.json(content_type=None)
        return any(m.get("id") == served_name for m in body.get("data", []))
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError, TypeError):
        return False


async def wait_ready(
    proc: Process,
    root: str,
    served_name: str,
    *,
    limit: float,
    interval: float,
    log_path: Path | None = None,
    log_offset: int = 0,
) -> None:
    """Poll ``root``/health and /v1/models until both answer 200 and list ``served_name``.

    Raises :class:`NotReady` if the process exits first or ``limit`` seconds pass.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    exited = asyncio.ensure_future(proc.wait())
    client_timeout = aiohttp.ClientTimeout(total=max(interval, 5.0))
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while True:
                if exited.done():
                    tail = log_tail(log_path, log_offset)
                    raise NotReady(
                        f"vllm exited with code {proc.returncode} before it was ready"
                        + (f"; last log lines:\n{tail}" if tail else "")
                    )
                if await _answers(session, root, served_name):
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise NotReady(f"vllm was not ready after {limit:g}s")
                await asyncio.wait({exited}, timeout=min(interval, remaining))
    finally:
        exited.cancel()
