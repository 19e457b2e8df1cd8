"""A private PostgreSQL server for tests that stop and restart Postgres (never the shared one).

`initdb` into a temporary directory, `pg_ctl start` on a free port (TCP on 127.0.0.1, its
unix socket in that directory too). Postgres refuses to run as root: when the tests do, the
server's programs run as the `postgres` OS user and the directory is handed to it. Made for
speed: no fsync (a test's data need not survive a power cut, only the server's crash).
Commits stay synchronous: an asynchronous commit could be lost by `kill`, which is what the
tests check does not happen to what the user was told is saved.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import asyncpg

from tests.redis_server import free_port

SERVER_USER = "postgres"


def server_binary(name: str) -> str:
    """`initdb`/`pg_ctl` of the newest PostgreSQL installed (Debian's layout first)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    binary = found[-1] if found else shutil.which(name)
    assert binary, f"{name} is not installed (PostgreSQL server binaries)"
    return binary


class PrivatePostgres:
    """One cluster in a temporary directory; `start`, `stop`/`kill`, `restart` on the same
    port, `cleanup` at the end (stops it and removes the directory)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chatmux-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.log.touch()
        self._user = SERVER_USER if os.geteuid() == 0 else None
        if self._user is not None:  # the server's own user must own its files
            entry = pwd.getpwnam(self._user)
            for path in (self.root, self.log):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def _run(self, *args: str) -> None:
        """Run one of the server's programs as its user; its output goes to the log file."""
        with self.log.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *args, cwd=self.root, user=self._user, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log, env={**os.environ, "LC_ALL": "C"},
            )
            code = await asyncio.wait_for(process.wait(), 60)
        if code:
            raise AssertionError(f"{Path(args[0]).name} failed ({code}):\n"
                                 + self.log.read_text(errors="replace")[-3000:])

    async def init(self) -> None:
        await self._run(server_binary("initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8")

    async def start(self) -> None:
        if not self.data.exists():
            await self.init()
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        await self._run(server_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                        "-o", options, "-w", "-t", "30", "start")
        self.running = True

    async def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, the server shuts down cleanly; `immediate`: it
        quits at once, like a crash (recovery runs on the next start)."""
        if not self.running:
            return
        await self._run(server_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                        "-t", "30", "stop")
        self.running = False

    async def kill(self) -> None:
        await self.stop("immediate")

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def create_database(self, name: str) -> str:
        """A new database on this server; its SQLAlchemy URL."""
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                     database="postgres", timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    async def cleanup(self) -> None:
        try:
            await self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
