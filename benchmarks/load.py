"""Load benchmark (issue #12 "The hot path"): how many answers a second one bot process
completes, and where the time goes.

Usage:
    python -m benchmarks.load [--preset smoke|default|zero] [--users 100] [--turns 5]
                              [--flood | --no-flood] [--global-rate 30]
                              [--first-token-delay 0.05] [--chunk-delay 0.003]
                              [--ramp 2] [--think-min 0.1] [--think-max 0.5] [--turn-timeout 60]
                              [--seed 1] [--backend openai|vllm] [--app-dir DIR]
                              [--postgres URL] [--db-prefix NAME] [--redis URL]
                              [--bot-env NAME=VALUE] [--log-dir DIR] [--json PATH]
                              [--replicas N] [--webhook]

The real `chatmux run` runs as a subprocess (`python -m bot run`, the code in `--app-dir`
first on PYTHONPATH: a `git worktree` of an older commit measures that commit) against a fresh
Postgres database, a Redis prefix of its own, the strict fake Bot API (`FakeTelegram`, with
Telegram-like flood limits unless `--no-flood`) and a fast fake model
(`benchmarks.fake_model`: a ~308-token Markdown answer in 236 chunks). `--users` private chats
each ask `--turns` questions, closed loop: the first at a seeded offset within `--ramp` s, each
next one a seeded think time after the previous answer arrived. The same seed is the same
workload. A turn ends with the bot's message carrying the answer's 👍 button (completed) or an
error line with 🔄 only (failed); none within `--turn-timeout` s: lost (the user goes on; an
answer that comes later counts as delivered, not completed). After the last turn the run waits
until the bot has made no Bot API call for a second, then stops it with SIGTERM.

Reported (stdout; `--json` writes the numbers): answers/s (completed turns over the time from
the first question to the last final message), question → final message percentiles,
question → model request, model finished → final message, Bot API calls and 429s per answer by
method, draft frames, Postgres transactions, new connections and idle-in-transaction time per
answer (`pg_stat_database` of the run's database, read after the bot stopped), the bot's CPU ms
per answer and peak RSS, and the CPU of this process (the fakes), of Postgres and of Redis.
"Per answer" divides by the answers delivered, in time or late.

Presets: smoke (5 × 2, for CI), default (100 × 5), zero (500 × 5, a zero-delay model); explicit
flags override the preset.

`--replicas N` (N > 1) runs the same workload through N webhook replicas of the bot sharing
Redis and the database (`--webhook`: one replica, in webhook mode); the fake Bot API posts
each update to the next replica in turn (up to 40 deliveries at once, one at a time per chat,
like Telegram), as a load balancer in front of
them would. CPU is summed over the processes; RSS is the largest process's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import yaml
from sqlalchemy.engine import make_url

from benchmarks.fake_model import CHUNKS, COMPLETION_TOKENS, TAG, LeanModelServer, answer_for
from tests.fakes.telegram.flood import (
    DRAFT_BURST,
    DRAFT_RATE,
    GROUP_PER_MINUTE,
    PRIVATE_BURST,
    PRIVATE_RATE,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.services import drop_redis_prefix

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-model"
MODEL_KEY_ENV = "BENCH_MODEL_KEY"
FIRST_USER = 10_000_001
ANSWER_BUTTON = "ans:up:"  # bot/keyboards/answers.py: AnswerAction(prefix="ans"), 👍 = "up"
# pg_stat_database lags: a backend going idle reports at most once a second, and one that
# reported less than a second before waits PGSTAT_IDLE_INTERVAL (10 s) to report again, so the
# start-up's last transactions appear ~10 s late; a backend that exits reports at once.
STARTUP_SETTLE = 11.0  # after the first getUpdates, before the baseline
STATS_FLUSH = 1.5  # after the bot exited, before the final reading
QUIET = 1.0  # the run ends when the bot made no Bot API call for this long
SAMPLE_EVERY = 0.05  # pg_stat_activity sampling
CLK_TCK = os.sysconf("SC_CLK_TCK")
WEBHOOK_SECRET = "bench-webhook-secret"
START_TIMEOUT, STOP_TIMEOUT = 120.0, 40.0  # the bot's start-up (to its first getUpdates), exit
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")

BASE = {"users": 100, "turns": 5, "flood": True, "first_token_delay": 0.05,
        "chunk_delay": 0.003, "ramp": 2.0, "think_min": 0.1, "think_max": 0.5,
        "turn_timeout": 60.0, "seed": 1, "global_rate": None, "backend": "openai"}
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"users": 5, "turns": 2},
    "default": {"users": 100, "turns": 5, "flood": True},
    "zero": {"users": 500, "turns": 5, "flood": True, "first_token_delay": 0.0,
             "chunk_delay": 0.0},
}


# --- the workload ----------------------------------------------------------------------------

@dataclass
class Turn:
    user: int
    turn: int
    sent: float  # time.monotonic() when the question was sent
    final: float | None = None  # when the final message (or the error line) arrived
    outcome: str = "pending"  # completed | failed | lost
    drafts: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Plan:
    """The seeded workload: per user, the first question's offset and the think times."""

    offsets: list[float]
    thinks: list[list[float]]

    @classmethod
    def make(cls, users: int, turns: int, ramp: float, think: tuple[float, float],
             seed: int) -> Plan:
        rng = random.Random(seed)
        offsets = [rng.uniform(0, ramp) for _ in range(users)]
        thinks = [[rng.uniform(*think) for _ in range(turns - 1)] for _ in range(users)]
        return cls(offsets, thinks)


def question(user: int, turn: int) -> str:
    return (f"Question {turn} from user {user}: how do I pool database connections in "
            "asyncpg, and what should I watch out for?")


class Workload:
    """Simulated users on the fake Bot API; turns are matched to the bot's messages as they
    arrive (a FakeTelegram observer)."""

    def __init__(self, telegram: FakeTelegram, args: argparse.Namespace) -> None:
        self.telegram, self.args = telegram, args
        self.turns: dict[tuple[int, int], Turn] = {}
        self.current: dict[int, Turn] = {}  # chat -> its turn in progress
        self.calls: Counter[str] = Counter()
        self.notices: Counter[str] = Counter()  # the texts of error lines
        self.late_answers = 0  # answers to turns given up as lost
        self.stray_notices = 0  # error lines in a chat with no turn waiting
        self.answered: list[float] = []  # when each answer (in time or late) arrived
        self.last_call = 0.0  # the last Bot API call but getUpdates
        self.measuring = False
        telegram.observers.append(self._observe)

    def _observe(self, name: str, params: dict[str, Any], result: Any, at: float) -> None:
        if not self.measuring:
            return
        self.calls[name] += 1
        if name != "getUpdates":
            self.last_call = at
        if name == "sendMessageDraft":
            turn = self.current.get(_int(params.get("chat_id")))
            if turn is not None and turn.outcome == "pending":
                turn.drafts += 1
        elif name in ("sendMessage", "sendDocument") and isinstance(result, dict):
            self._final(result, at)

    def _final(self, message: dict[str, Any], at: float) -> None:
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        data = [str(b.get("callback_data", "")) for row in rows for b in row]
        if not data:
            return  # not the end of a turn (a part of a long answer, a note)
        if any(d.startswith(ANSWER_BUTTON) for d in data):
            tag = TAG.search(message.get("text") or message.get("caption") or "")
            turn = self.turns.get((int(tag[1]), int(tag[2]))) if tag else None
            outcome = "completed"
            self.answered.append(at)
        else:  # an error line with 🔄: whatever turn the chat is in
            turn = self.current.get(message["chat"]["id"])
            outcome = "failed"
            self.notices[(message.get("text") or "")[:80]] += 1
        if turn is None or turn.outcome != "pending":
            if outcome == "completed":
                self.late_answers += 1
            else:
                self.stray_notices += 1
            return
        turn.final, turn.outcome = at, outcome
        turn.done.set()

    async def run(self) -> None:
        a = self.args
        plan = Plan.make(a.users, a.turns, a.ramp, (a.think_min, a.think_max), a.seed)
        start = time.monotonic()
        await asyncio.gather(*(self._user(i, start, plan) for i in range(a.users)))
        # Let the bot finish what it still does (late answers, the writes after an answer):
        # until it has made no Bot API call for QUIET s, at most --turn-timeout s.
        deadline = time.monotonic() + a.turn_timeout
        while (left := deadline - time.monotonic()) > 0:
            quiet = time.monotonic() - self.last_call
            if quiet >= QUIET:
                break
            await asyncio.sleep(min(left, QUIET - quiet))

    async def _user(self, index: int, start: float, plan: Plan) -> None:
        user = FIRST_USER + index
        await asyncio.sleep(max(0.0, start + plan.offsets[index] - time.monotonic()))
        for number in range(1, self.args.turns + 1):
            if number > 1:
                await asyncio.sleep(plan.thinks[index][number - 2])
            turn = self.turns[(user, number)] = Turn(user, number, time.monotonic())
            self.current[user] = turn
            self.telegram.user_sends(question(user, number), chat_id=user,
                                     first_name=f"User{index}", language_code="en")
            try:
                await asyncio.wait_for(turn.done.wait(), self.args.turn_timeout)
            except TimeoutError:
                turn.outcome = "lost"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --- measuring the processes -----------------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: utime is [11], stime [12], cutime [13]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu() -> dict[str, float]:
    """CPU seconds of the Postgres and Redis servers on this machine: their live processes,
    plus what the postmaster reaped from backends that exited (cutime). Empty if not local."""
    procs: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm in ("postgres", "redis-server"):
                procs[int(entry.name)] = (comm, int(_stat_fields(int(entry.name))[1]))
        except (OSError, IndexError, ValueError):
            continue
    totals: dict[str, float] = {}
    for pid, (comm, parent) in procs.items():
        root = procs.get(parent, ("", 0))[0] != comm  # the postmaster / the redis server
        with contextlib.suppress(OSError):
            totals[comm] = totals.get(comm, 0.0) + cpu_seconds(pid, children=root)
    return totals


# --- Postgres ------------------------------------------------------------------------------

DB_COLUMNS = ("xact_commit", "xact_rollback", "sessions", "idle_in_transaction_time",
              "tup_inserted", "tup_updated", "tup_deleted")


class Postgres:
    """The run's database, and a monitor connection to the `postgres` database (whose own
    queries are not counted in the run's database)."""

    def __init__(self, admin_url: str, prefix: str = "chatmux_bench") -> None:
        url = make_url(admin_url)
        self.server = url.set(drivername="postgresql")
        self.name = f"{prefix}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
        self.bot_url = url.set(drivername="postgresql+asyncpg", database=self.name
                               ).render_as_string(hide_password=False)
        self._monitor: asyncpg.Connection | None = None
        self.samples: list[int] = []  # connections idle in transaction, every SAMPLE_EVERY s
        self.connections: list[int] = []

    def _dsn(self) -> str:
        return self.server.set(database="postgres").render_as_string(hide_password=False)

    async def create(self) -> None:
        self._monitor = await asyncpg.connect(self._dsn())
        await self._monitor.execute(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        conn = self._monitor or await asyncpg.connect(self._dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()
            self._monitor = None

    async def stats(self) -> dict[str, float]:
        assert self._monitor is not None
        await self._monitor.execute("SELECT pg_stat_clear_snapshot()")
        row = await self._monitor.fetchrow(
            f"SELECT {', '.join(DB_COLUMNS)} FROM pg_stat_database WHERE datname = $1",
            self.name)
        assert row is not None
        return {c: float(row[c] or 0) for c in DB_COLUMNS}

    async def sample(self) -> None:
        """Count the bot's connections (and those idle in transaction) until cancelled."""
        conn = await asyncpg.connect(self._dsn())
        try:
            while True:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE state = 'idle in transaction') AS idle, "
                    "count(*) AS total FROM pg_stat_activity WHERE datname = $1", self.name)
                assert row is not None
                self.samples.append(row["idle"])
                self.connections.append(row["total"])
                await asyncio.sleep(SAMPLE_EVERY)
        finally:
            await conn.close()


# --- the bot -------------------------------------------------------------------------------

def write_catalogue(path: Path, model: LeanModelServer, backend: str) -> Path:
    entry = {
        "id": "bench", "title": "Bench", "backend": backend, "base_url": model.base_url,
        "model": MODEL, "api_key_env": MODEL_KEY_ENV, "context_window": 8192,
        "params": {"temperature": 0.7, "max_tokens": 1024},
        "timeouts": {"connect": 5, "first_token": 30, "total": 120},
    }
    path.write_text(yaml.safe_dump({"default_model": "bench", "models": [entry]}))
    return path


def bot_environment(args: argparse.Namespace, telegram: FakeTelegram, database_url: str,
                    redis_prefix: str, catalogue: Path) -> dict[str, str]:
    """A clean environment: only what the bot needs (the rest of the settings at defaults)."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update(
        PYTHONPATH=str(args.app_dir), BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.base_url, DATABASE_URL=database_url,
        REDIS_URL=args.redis, REDIS_PREFIX=redis_prefix, MODELS_FILE=str(catalogue),
        **{MODEL_KEY_ENV: "sk-bench"},
    )
    for item in args.bot_env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def code_origin(app_dir: Path, env: dict[str, str], cwd: Path) -> str:
    """Where the bot's packages are imported from with this environment, and the commit."""
    probe = subprocess.run(
        [sys.executable, "-c", "import bot, inference, storage; "
         "print(*(m.__file__ for m in (bot, inference, storage)), sep='\\n')"],
        env=env, cwd=cwd, capture_output=True, text=True, check=True)
    files = [Path(f).resolve() for f in probe.stdout.split()]
    wrong = [str(f) for f in files if app_dir.resolve() not in f.parents]
    if wrong:
        raise SystemExit(f"--app-dir {app_dir} does not win: the bot would import {wrong}")
    git = subprocess.run(["git", "-C", str(app_dir), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return f"{app_dir.resolve()} ({git.stdout.strip() or 'not a git checkout'})"


class BotProcess:
    """`python -m bot run` in a temporary directory, its output in `log`."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str = "bot") -> None:
        self.env, self.cwd, self.log = env, cwd, cwd / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def webhook(self) -> str | None:
        """Where this replica takes deliveries (webhook mode), or None (polling)."""
        if not self.env.get("WEBHOOK_URL"):
            return None
        return f"http://{self.env['WEBHOOK_LISTEN']}{urlsplit(self.env['WEBHOOK_URL']).path}"

    async def start(self, telegram: FakeTelegram) -> None:
        """Start it; up once it polls, or (webhook mode) once it has set the webhook."""
        method = "setWebhook" if self.webhook else "getUpdates"
        before = sum(r.method == method and r.ok for r in telegram.requests)
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.cwd, env=self.env,
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while sum(r.method == method and (r.ok or method == "getUpdates")
                  for r in telegram.requests) <= before:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start ({method}; exit code "
                                   f"{self.proc.returncode}); its log: {self.log}")
            await asyncio.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> int | None:
        """SIGTERM (the bot drains its answers), then wait; SIGKILL after STOP_TIMEOUT s."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log_summary(self) -> dict[str, Any]:
        """Warnings and errors in the bot's log, the most frequent first."""
        levels: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        line_re = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (\S+): (.*)$")
        for line in self.log.read_text(errors="replace").splitlines():
            found = line_re.match(line)
            if found and "Received SIGTERM signal" in found[3]:
                continue  # aiogram's word for the benchmark stopping it
            if found:
                levels[found[1]] += 1
                messages[f"{found[1]} {found[2]}: {re.sub(r'[0-9]+', 'N', found[3])[:120]}"] += 1
            elif line.startswith("Traceback"):
                levels["traceback"] += 1
        return {"levels": dict(levels), "top": messages.most_common(5)}


# --- the run -------------------------------------------------------------------------------

def replica_environments(args: argparse.Namespace, env: dict[str, str],
                         ) -> list[tuple[str, dict[str, str]]]:
    """(log name, environment) of each bot process: one polling, or `--replicas` webhook
    replicas of one bot, each listening on a port of its own."""
    if not args.webhook:
        return [("bot", env)]
    ports = [free_port() for _ in range(args.replicas)]
    public = f"http://127.0.0.1:{ports[0]}/telegram"  # what setWebhook registers
    return [(f"bot-{n + 1}", {**env, "WEBHOOK_URL": public, "WEBHOOK_SECRET": WEBHOOK_SECRET,
                              "WEBHOOK_LISTEN": f"127.0.0.1:{port}"})
            for n, port in enumerate(ports)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bots_cpu(bots: list[BotProcess]) -> float:
    return sum(cpu_seconds(b.pid) for b in bots)


def merged_logs(bots: list[BotProcess]) -> dict[str, Any]:
    levels: Counter[str] = Counter()
    top: Counter[str] = Counter()
    for bot in bots:
        summary = bot.log_summary()
        levels.update(summary["levels"])
        top.update(dict(summary["top"]))
    return {"levels": dict(levels), "top": top.most_common(5)}


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One benchmark run; returns the report's numbers."""
    telegram = FakeTelegram(flood=args.flood, global_per_second=args.global_rate)
    model = LeanModelServer(MODEL, first_token_delay=args.first_token_delay,
                            chunk_delay=args.chunk_delay, api_key="sk-bench")
    pg = Postgres(args.postgres, args.db_prefix)
    prefix = f"chatmux-bench-{os.getpid()}-{int(time.time())}"
    workdir = args.log_dir or Path(tempfile.mkdtemp(prefix="chatmux-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bots: list[BotProcess] = []
    sampler: asyncio.Task[None] | None = None
    ok = False
    try:
        await telegram.start()
        await model.start()
        await pg.create()
        catalogue = write_catalogue(workdir / "models.yaml", model, args.backend)
        env = bot_environment(args, telegram, pg.bot_url, prefix, catalogue)
        origin = await asyncio.to_thread(code_origin, args.app_dir, env, workdir)
        print(f"bot code: {origin}; logs: {workdir}/bot*.log", file=sys.stderr)
        bots = [BotProcess(e, workdir, name) for name, e in replica_environments(args, env)]
        workload = Workload(telegram, args)
        for bot in bots:
            await bot.start(telegram)
        if args.webhook:  # the fake acts as the load balancer in front of the replicas
            telegram.webhook.balance([b.webhook for b in bots if b.webhook])
        await asyncio.sleep(STARTUP_SETTLE)  # start-up's transactions reach pg_stat_database

        db_before, bot_cpu0, own_cpu0 = await pg.stats(), bots_cpu(bots), own_cpu()
        servers0, wall0 = server_cpu(), time.monotonic()
        workload.measuring = True
        sampler = asyncio.create_task(pg.sample())
        await workload.run()
        workload.measuring = False
        wall1, bot_cpu1, own_cpu1, servers1 = (time.monotonic(), bots_cpu(bots),
                                               own_cpu(), server_cpu())
        rss = max(peak_rss_mb(b.pid) for b in bots)
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        codes = await asyncio.gather(*(b.stop() for b in bots))
        exit_code = next((c for c in codes if c != 0), codes[0])
        await asyncio.sleep(STATS_FLUSH)
        db_after = await pg.stats()
        ok = True
        return summarize(args, workload, telegram, model, origin, bots, pg.name, prefix,
                         wall1 - wall0,
                         db={k: db_after[k] - db_before[k] for k in DB_COLUMNS},
                         idle_samples=pg.samples, connection_samples=pg.connections,
                         bot_cpu=bot_cpu1 - bot_cpu0, own_cpu=own_cpu1 - own_cpu0,
                         servers={k: servers1.get(k, 0.0) - servers0.get(k, 0.0)
                                  for k in servers1},
                         rss=rss, exit_code=exit_code, since=wall0)
    finally:
        if sampler is not None and not sampler.done():
            sampler.cancel()
        for bot in bots:
            await bot.stop()
            if not ok:
                print(f"the run failed; the bot's log: {bot.log}", file=sys.stderr)
        await telegram.stop()
        await model.stop()
        await pg.drop()
        await drop_redis_prefix(args.redis, prefix)


def summarize(args: argparse.Namespace, workload: Workload, telegram: FakeTelegram,
              model: LeanModelServer, origin: str, bots: list[BotProcess], database: str,
              redis_prefix: str, window: float, *,
              db: dict[str, float], idle_samples: list[int], connection_samples: list[int],
              bot_cpu: float, own_cpu: float, servers: dict[str, float], rss: float,
              exit_code: int | None, since: float) -> dict[str, Any]:
    turns = list(workload.turns.values())
    done = [t for t in turns if t.outcome == "completed"]
    finals = [t.final for t in turns if t.final is not None]
    n = len(done)
    delivered = n + workload.late_answers  # resources per answer: all answers delivered

    def per(value: float) -> float:
        return value / delivered if delivered else 0.0

    first = min(t.sent for t in turns)
    span = (max(finals) - first) if finals else 0.0
    delivery_span = (max(workload.answered) - first) if workload.answered else 0.0
    e2e = [t.final - t.sent for t in done if t.final is not None]
    to_model, after_model, generation, streaming = [], [], [], []
    for t in done:
        served = model.served.get((t.user, t.turn))
        if not served:
            continue
        to_model.append(served[0].arrived - t.sent)
        last = served[-1]
        if last.finished is not None and t.final is not None:
            after_model.append(t.final - last.finished)
            generation.append(last.finished - last.arrived)
            streaming.append(t.final - served[0].arrived)
    refused: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in telegram.requests:
        if r.time >= since and r.error_code is not None:
            (refused if r.error_code == 429 else errors)[
                r.method if r.error_code == 429 else f"{r.method} {r.error_code}"] += 1
    drafts = [t.drafts for t in done]
    calls = {k: v for k, v in workload.calls.items() if k != "getUpdates"}
    idle_time = db["idle_in_transaction_time"]
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("json", "log_dir")},
        "bot_code": origin,
        "database": database, "redis_prefix": redis_prefix,  # removed at the end of the run
        "turns": {"total": len(turns), "completed": n,
                  "failed": sum(t.outcome == "failed" for t in turns),
                  "lost": sum(t.outcome == "lost" for t in turns),
                  "late_answers": workload.late_answers, "stray_notices": workload.stray_notices},
        "answers_per_s": n / span if span else 0.0,  # completed in time
        "span_s": span,  # first question → last final message of a turn
        "answers_delivered": delivered,  # in time or late; the per-answer figures' divisor
        "delivered_per_s": delivered / delivery_span if delivery_span else 0.0,
        "question_to_final_s": {f"p{q}": percentile(e2e, q) for q in (50, 95, 99)},
        "question_to_model_s": {f"p{q}": percentile(to_model, q) for q in (50, 95)},
        "model_done_to_final_s": {f"p{q}": percentile(after_model, q) for q in (50, 99)},
        "model_requests": dict(model.paths),
        "bot_api_calls_per_answer": {k: per(v) for k, v in sorted(calls.items())},
        "bot_api_calls_per_answer_total": per(sum(calls.values())),
        "http_429_by_method": dict(refused),
        "other_api_errors": dict(errors),
        "error_notices": dict(workload.notices),
        "draft_frames_per_answer": {
            "mean": statistics.fmean(drafts) if drafts else 0.0,
            "max": max(drafts, default=0),
            # per 0.5 s of the model's generation (request → last chunk written), and of the
            # bot's streaming (model request → final message: it may read the stream late)
            "per_0_5_s_of_generation": (  # none for a model that takes no time
                sum(drafts) / (sum(generation) / 0.5)
                if generation and statistics.fmean(generation) >= 0.01 else None),
            "per_0_5_s_of_streaming": (sum(drafts) / (sum(streaming) / 0.5)
                                       if sum(streaming) else 0.0),
        },
        "db_per_answer": {
            "transactions": per(db["xact_commit"] + db["xact_rollback"]),
            "commits": per(db["xact_commit"]), "rollbacks": per(db["xact_rollback"]),
            "new_connections": per(db["sessions"]),
            "rows_written": per(db["tup_inserted"] + db["tup_updated"] + db["tup_deleted"]),
            "idle_in_transaction_ms": per(idle_time),
        },
        "db_totals": db,
        "idle_in_transaction_connections": {
            "max": max(idle_samples, default=0),
            "mean": statistics.fmean(idle_samples) if idle_samples else 0.0,
            "samples": len(idle_samples),
        },
        "bot_connections": {"max": max(connection_samples, default=0),
                            "mean": (statistics.fmean(connection_samples)
                                     if connection_samples else 0.0)},
        "bot_cpu_ms_per_answer": per(1000 * bot_cpu),
        "bot_cpu_share": bot_cpu / window if window else 0.0,
        "bot_peak_rss_mb": rss,
        "bot_exit_code": exit_code,
        "benchmark_cpu_share": own_cpu / window if window else 0.0,
        "benchmark_cpu_ms_per_answer": per(1000 * own_cpu),
        "server_cpu_share": {k: v / window for k, v in servers.items()} if window else {},
        "window_s": window,
        "bot_log": {"path": ", ".join(str(b.log) for b in bots), **merged_logs(bots)},
        # webhook mode: updates each replica took (2xx), and deliveries refused or failed
        "webhook_deliveries": {
            "taken": [sum(d.url == b.webhook and d.status is not None and d.status < 300
                          for d in telegram.webhook.deliveries) for b in bots],
            "not_taken": sum(d.status is None or d.status >= 300
                             for d in telegram.webhook.deliveries),
        } if args.webhook else None,
    }


# --- the report ------------------------------------------------------------------------------

def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def _per_method(values: dict[str, float], fmt: str = "{:.2f}") -> str:
    shown = [f"{k} {fmt.format(v)}" for k, v in sorted(values.items(), key=lambda kv: -kv[1])]
    return ", ".join(shown) or "none"


def report_lines(r: dict[str, Any]) -> Iterator[tuple[str, str]]:
    c, t = r["config"], r["turns"]
    flood = (f"on (private: messages {PRIVATE_RATE:g}/s burst {PRIVATE_BURST}, drafts "
             f"{DRAFT_RATE:g}/s burst {DRAFT_BURST}; groups {GROUP_PER_MINUTE}/min)"
             if c["flood"] else "off")
    yield "workload", (f"{c['users']} users × {c['turns']} turns, seed {c['seed']}, ramp "
                       f"{c['ramp']:g} s, think {c['think_min']:g}–{c['think_max']:g} s")
    yield "flood limits", flood + (f"; global {c['global_rate']:g}/s" if c["global_rate"]
                                   else "; no global cap")
    yield "model", (f"{c['backend']}: first token {c['first_token_delay']:g} s, {CHUNKS} chunks "
                    f"every {c['chunk_delay']:g} s, {COMPLETION_TOKENS} tokens, "
                    f"{len(answer_for(FIRST_USER, 1))} characters")
    yield "bot code", r["bot_code"]
    yield "bot processes", (f"{c['replicas']} webhook replicas sharing Redis and Postgres, "
                            "the fake Bot API delivering to them in turn" if c["replicas"] > 1
                            else "1, webhook" if c["webhook"] else "1, long polling")
    yield "turns", (f"{t['completed']} completed, {t['failed']} failed, {t['lost']} lost "
                    f"(of {t['total']})")
    if t["late_answers"] or t["stray_notices"]:
        yield "after their turn was lost", (f"{t['late_answers']} answers, "
                                            f"{t['stray_notices']} error lines")
    yield "answers/s", f"{r['answers_per_s']:.2f} (over {r['span_s']:.1f} s)"
    if r["answers_delivered"] != t["completed"]:
        yield "answers delivered/s", (f"{r['delivered_per_s']:.2f} ({r['answers_delivered']} "
                                      "answers in time or late: the per-answer figures' divisor)")
    q = r["question_to_final_s"]
    yield "question → final message", f"p50 {_s(q['p50'])}  p95 {_s(q['p95'])}  p99 {_s(q['p99'])}"
    q = r["question_to_model_s"]
    yield "question → model request", f"p50 {_s(q['p50'])}  p95 {_s(q['p95'])}"
    q = r["model_done_to_final_s"]
    yield "model finished → final message", f"p50 {_s(q['p50'])}  p99 {_s(q['p99'])}"
    yield "Bot API calls / answer", (f"{r['bot_api_calls_per_answer_total']:.2f}: "
                                     + _per_method(r["bot_api_calls_per_answer"]))
    d = r["draft_frames_per_answer"]
    generation = d["per_0_5_s_of_generation"]
    yield "draft frames / answer", (f"mean {d['mean']:.2f}, max {d['max']}; per 0.5 s: "
                                    + ("–" if generation is None else f"{generation:.2f}")
                                    + " of the model's generation, "
                                    f"{d['per_0_5_s_of_streaming']:.2f} of the bot's streaming "
                                    "(model request → final message)")
    yield "429s returned", (_per_method(r["http_429_by_method"], "{}")
                            + f"; turns failed: {t['failed']}, lost: {t['lost']}")
    if r["other_api_errors"]:
        yield "other Bot API errors", _per_method(r["other_api_errors"], "{}")
    db = r["db_per_answer"]
    yield "DB transactions / answer", (f"{db['transactions']:.2f} (commits {db['commits']:.2f}, "
                                       f"rollbacks {db['rollbacks']:.2f})")
    yield "DB new connections / answer", (
        f"{db['new_connections']:.3f}; bot's connections max {r['bot_connections']['max']}, "
        f"mean {r['bot_connections']['mean']:.1f}")
    yield "DB rows written / answer", f"{db['rows_written']:.2f}"
    i = r["idle_in_transaction_connections"]
    yield "idle in transaction", (f"{db['idle_in_transaction_ms']:.2f} ms / answer "
                                  f"({r['db_totals']['idle_in_transaction_time']:.0f} ms in all); "
                                  f"connections: max {i['max']}, mean {i['mean']:.2f}")
    yield "bot CPU", (f"{r['bot_cpu_ms_per_answer']:.1f} ms / answer ({r['bot_cpu_share']:.0%} "
                      f"of a core over {r['window_s']:.1f} s, all processes); peak RSS "
                      f"{r['bot_peak_rss_mb']:.0f} MB" + (" (the largest process)"
                                                          if c["replicas"] > 1 else ""))
    yield "benchmark process CPU", (f"{r['benchmark_cpu_share']:.0%} of a core "
                                    f"({r['benchmark_cpu_ms_per_answer']:.1f} ms / answer)")
    if r["server_cpu_share"]:
        yield "server CPU", ", ".join(f"{k} {v:.0%}" for k, v in r["server_cpu_share"].items())
    if r["webhook_deliveries"]:
        w = r["webhook_deliveries"]
        yield "webhook deliveries", (" / ".join(map(str, w["taken"])) + " taken by the "
                                     f"replicas, {w['not_taken']} not taken (redelivered)")
    if r["bot_exit_code"]:
        yield "bot exit code", str(r["bot_exit_code"])
    log = r["bot_log"]
    yield "bot log", (", ".join(f"{v} {k}" for k, v in log["levels"].items()) or "clean")
    for message, count in log["top"]:
        yield "", f"{count}× {message}"


def print_report(r: dict[str, Any]) -> None:
    lines = list(report_lines(r))
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        print(f"{label:<{width}}{value}")


# --- the command line ------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--users", type=int)
    parser.add_argument("--turns", type=int)
    parser.add_argument("--flood", action=argparse.BooleanOptionalAction,
                        help="Telegram-like flood limits in the fake Bot API (default: on)")
    parser.add_argument("--global-rate", type=float,
                        help="also cap all messages and edits at this many a second")
    parser.add_argument("--first-token-delay", type=float, help="seconds (default 0.05)")
    parser.add_argument("--chunk-delay", type=float, help="seconds between chunks (0.003)")
    parser.add_argument("--ramp", type=float, help="first questions within this many s (2)")
    parser.add_argument("--think-min", type=float, help="think time after an answer (0.1 s)")
    parser.add_argument("--think-max", type=float, help="(0.5 s)")
    parser.add_argument("--turn-timeout", type=float, help="a turn is lost after this (60 s)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--backend", choices=("openai", "vllm"),
                        help="the catalogue entry's backend (vllm: health checks, /tokenize)")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="the chatmux checkout whose bot runs (default: this one)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a server where the run may create and drop its database")
    parser.add_argument("--db-prefix", default="chatmux_bench",
                        help="the run's database is <prefix>_<date>_<time>_<pid>")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--bot-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra setting for the bot (e.g. DRAFT_INTERVAL=0.25)")
    parser.add_argument("--log-dir", type=Path,
                        help="the bot's working directory and log (default: a new temporary one)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--replicas", type=int, default=1,
                        help="bot processes: above 1, webhook replicas sharing Redis and the "
                             "database, the fake Bot API delivering to them in turn")
    parser.add_argument("--webhook", action="store_true",
                        help="webhook mode even with one process (implied by --replicas > 1)")
    args = parser.parse_args(argv)
    args.webhook = args.webhook or args.replicas > 1
    values = {**BASE, **PRESETS[args.preset]}
    for key, value in values.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.replicas < 1:
        parser.error("--replicas must be positive")
    if args.users < 1 or args.turns < 1 or args.think_min > args.think_max:
        parser.error("--users and --turns must be positive, --think-min ≤ --think-max")
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result = await run(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
