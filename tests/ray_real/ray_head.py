"""A real Ray head for tests: `ray start --head` in a session of its own, on free loopback
ports, with its temp files in a directory of its own; stopped by ending that session's
processes (never `ray stop`, which would end every Ray on the machine), and the shared-memory
files its engines left in /dev/shm removed."""

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

from inference.pool.gpus import free_port

START_TIMEOUT = 180.0
SHM = Path("/dev/shm")


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if os.getsid(int(entry.name)) == sid:
                pids.append(int(entry.name))
    return pids


def shm_in_use() -> set[str]:
    """/dev/shm files some process has mapped or open."""
    used: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    used.add(line.split("/dev/shm/", 1)[1].split()[0])
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("/dev/shm/"):
                        used.add(target.removeprefix("/dev/shm/"))
    return used


@dataclass
class RayHead:
    python: str  # the vLLM virtualenv's python, with ray[serve] next to it
    workdir: Path
    env: dict[str, str]
    num_cpus: int = 2
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    serve_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    sid: int | None = None
    _shm_before: set[str] = field(default_factory=set)

    @property
    def ray(self) -> str:
        return str(Path(self.python).with_name("ray"))

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ray-start.log"

    def start(self) -> None:
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self._shm_before = {p.name for p in SHM.iterdir()} if SHM.is_dir() else set()
        argv = [self.ray, "start", "--head", f"--port={self.port}",
                f"--num-cpus={self.num_cpus}", "--num-gpus=0",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                f"--metrics-export-port={self.metrics_port}",
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                f"--temp-dir={tmp / 'ray'}"]
        env = {**os.environ, **self.env, "TMPDIR": str(tmp),
               # Explicit: unset, Ray turns token auth on when it finds a token.
               "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        with self.log_path.open("ab") as log:
            # A session of its own: its daemons outlive `ray start` and are found by it.
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.sid = process.pid
        if process.wait(START_TIMEOUT) != 0:
            raise RuntimeError(f"ray start failed:\n{self.log_tail()}")
        self.wait_dashboard()

    def wait_dashboard(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                self.applications()
                return
            time.sleep(1)
        raise TimeoutError(f"Ray's dashboard did not answer in {timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def applications(self) -> dict:
        """`GET /api/serve/applications/` (blocking: fixtures and checks outside the loop)."""
        url = f"{self.dashboard_url}/api/serve/applications/"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.sid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in session_pids(self.sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while session_pids(self.sid) and time.monotonic() < deadline:
                time.sleep(0.5)
        left = session_pids(self.sid)
        if left:
            raise RuntimeError(f"Ray processes still running: {left}")
        # The engines' IPC files (psm_*, sem.mp-*): new since the start and used by nobody.
        if SHM.is_dir():
            used = shm_in_use()
            for path in SHM.iterdir():
                if path.name not in self._shm_before and path.name not in used \
                        and path.name.startswith(("psm_", "sem.mp-")):
                    with contextlib.suppress(OSError):
                        path.unlink()
