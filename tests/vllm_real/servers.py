"""Real vLLM servers for tests: started on free loopback ports, always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from inference.pool.argv import API_SERVER_MODULE
from inference.pool.gpus import free_port

READY_TIMEOUT = 300.0  # ~50 s on 2 cores with warm caches; the first start compiles more
# What the CPU build needs (see deploy/vllm/cpu-env.sh and deploy/README.md). Its OpenMP
# threads are bound to core 0, and `VllmServer` keeps its other processes there too: by
# default vLLM takes every core, and the bot under test, starved on a 2-core machine, read the
# stream seconds behind the server and took that long to act on a stop press.
CPU_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TRANSFORMERS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_CPU_OMP_THREADS_BIND": "0"}


def cpu_env() -> dict[str, str]:
    return {**os.environ, **CPU_ENV}


def serve_argv(python: str, target: Path, served_name: str, port: int, *,
               draft: Path | None = None, k: int = 3, max_model_len: int = 512,
               extra: tuple[str, ...] = ()) -> list[str]:
    argv = [python, "-m", API_SERVER_MODULE, "--model", str(target),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", "float32", "--max-model-len", str(max_model_len)]
    if draft is not None:
        argv += ["--speculative-config", json.dumps(
            {"method": "draft_model", "model": str(draft), "num_speculative_tokens": k})]
    return argv + list(extra)


def _first_core(pid: int) -> None:
    """Run process `pid` on one core only (like a server on hardware of its own), if there
    are other cores for the bot and the tests."""
    cores = os.sched_getaffinity(0)
    if len(cores) > 1:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(pid, {min(cores)})


@dataclass
class VllmServer:
    """One `python -m vllm.entrypoints.openai.api_server` process (its own process group)."""

    python: str
    target: Path
    served_name: str
    log_path: Path
    draft: Path | None = None
    k: int = 3
    max_model_len: int = 512
    extra: tuple[str, ...] = ()  # more arguments, e.g. ("--reasoning-parser", "deepseek_r1")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def start(self) -> None:
        argv = serve_argv(self.python, self.target, self.served_name, self.port,
                          draft=self.draft, k=self.k, max_model_len=self.max_model_len,
                          extra=self.extra)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=cpu_env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        _first_core(self.process.pid)  # before it has threads or children: they inherit it

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until /health and /v1/models answer (blocking: fixtures call it outside any event
        loop); fails with the log's tail if the server dies or is too slow."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.root}/health", timeout=5) as health:
                    ok = health.status == 200
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as models:
                    if ok and models.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"vLLM not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (the API server and its engine core process)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, grace: float = 15.0) -> None:
        if self.process is None:
            return
        self.kill(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # engine workers left behind

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.root}/metrics") as r:
            return await r.text()


def group_alive(pid: int) -> bool:
    """Whether any process of the group led by `pid` is still running."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True
