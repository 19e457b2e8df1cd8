"""A private PostgreSQL server for tests that stop and restart Postgres (never the shared one).

`initdb` into a temporary directory, `pg_ctl start` on a free port (TCP on 127.0.0.1, its
unix socket in that directory too). The programs are the machine's PostgreSQL when installed,
else the PostgreSQL 16 that the `pgserver` wheel ships. Postgres refuses to run as root: when
the tests do, the server's programs run as the `postgres` OS user (`nobody` where there is
none) and the directory is handed to it. Made for
speed: no fsync (a test's data need not survive a power cut, only the server's crash).
Commits stay synchronous: an asynchronous commit could be lost by `kill`, which is what the
tests check does not happen to what the user was told is saved.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import glob
import importlib.util
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import asyncpg

from tests.redis_server import free_port


def server_user() -> str | None:
    """The OS user the server runs as when the tests run as root (None: the tests' own)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"  # no PostgreSQL package on this machine: any unprivileged user will do


@functools.cache
def _wheel_binaries() -> Path | None:
    """The bin/ of the PostgreSQL in the `pgserver` wheel (a test extra), or None.

    Run as root, the server's user must be able to reach the programs; a virtualenv under a
    private home (/root is 0700) is not, so the installation (34 MB: bin, lib, share; it finds
    its libraries relative to itself) is copied once per process into a readable temporary
    directory, removed at exit."""
    spec = importlib.util.find_spec("pgserver")  # found, not imported (it has side effects)
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "pginstall"  # site-packages/pgserver/pginstall
    if server_user() is None:
        return source / "bin"
    copy = Path(tempfile.mkdtemp(prefix="chatmux-pgbin-"))
    copy.chmod(0o755)
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    # The layout is kept: the Linux wheel's programs find their libraries in the sibling
    # `pgserver.libs` through an RPATH relative to themselves.
    shutil.copytree(source, copy / "pgserver" / "pginstall", symlinks=True)
    if (libs := source.parent.parent / "pgserver.libs").is_dir():
        shutil.copytree(libs, copy / "pgserver.libs", symlinks=True)
    readable = stat.S_IRGRP | stat.S_IROTH
    for path in [copy / "pgserver", *copy.rglob("*")]:
        mode = path.stat().st_mode
        runnable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(mode | readable | (stat.S_IXGRP | stat.S_IXOTH if runnable else 0))
    return copy / "pgserver" / "pginstall" / "bin"


def wheels_first() -> bool:
    """`CHATMUX_TEST_SERVICES=embedded`: the wheels' servers even where the machine has its own
    (tests/embedded_services.py)."""
    return os.environ.get("CHATMUX_TEST_SERVICES") == "embedded"


def server_binary(name: str) -> str:
    """`initdb`/`pg_ctl` of the newest PostgreSQL installed (Debian's layout first, then PATH),
    else of the `pgserver` wheel's (first, with `CHATMUX_TEST_SERVICES=embedded`)."""
    if wheels_first() and (wheel := _wheel_binaries()) is not None:
        return str(wheel / name)
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    binary = found[-1] if found else shutil.which(name)
    if binary is None and (wheel := _wheel_binaries()) is not None:
        binary = str(wheel / name)
    assert binary, (f"{name} is not installed: neither the machine's PostgreSQL server nor the "
                    "`pgserver` wheel (pip install -e '.[test]')")
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
        self._user = server_user()
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
