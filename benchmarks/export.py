"""Export benchmark: N stored battles → Parquet, throughput and the exporter's peak memory.

    python -m benchmarks.export [--battles 1000000] [--formats arena,dpo] [--keep]

Creates a scratch Postgres database, fills it with `chatmux demo-data`'s generator (battles
plus the chat turns, votes, regenerations and edits that come with them), then runs
`chatmux export --format F --out F.parquet` for each format as a child process and reports
rows/s and the child's peak RSS (from wait4's rusage). Goal: ≥ 20,000 rows/s and < 400 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq

from storage.db import create_engine, create_sessionmaker
from storage.demo_data import generate_demo_data
from storage.migrate import upgrade

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def fill(url: str, battles: int) -> float:
    await upgrade(url)
    engine = create_engine(url)
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 10:
            last[0] = now
            print(f"  … {done:,} battles stored", flush=True)

    try:
        summary = await generate_demo_data(create_sessionmaker(engine), battles=battles,
                                           seed=1, progress=progress)
    finally:
        await engine.dispose()
    seconds = time.perf_counter() - started
    print(f"stored {summary.battles:,} battles ({summary.judged_battles:,} judged), "
          f"{summary.messages:,} messages, {summary.votes:,} votes, {summary.edits:,} edits "
          f"in {seconds:.0f} s")
    return seconds


def run_export(url: str, fmt: str, out: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, rows) of one `chatmux export` child process."""
    env = {**os.environ, "DATABASE_URL": url, "EXPORT_SALT": "benchmark"}
    started = time.perf_counter()
    child = subprocess.Popen(
        # The demo models are in no catalogue: without --include-restricted every row of
        # theirs would count as restricted (the policy filter runs all the same).
        [sys.executable, "-m", "bot", "export", "--format", fmt, "--out", str(out),
         "--include-restricted", *(["--include-ties"] if fmt in ("arena", "kto") else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output = child.stdout.read().decode() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export {fmt} failed: {output}")
    rows = pq.ParquetFile(out).metadata.num_rows
    return seconds, usage.ru_maxrss / 1024, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--formats", default="arena,dpo")
    parser.add_argument("--database-url", help="export from this database instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    name = f"chatmux_bench_export_{os.getpid()}"
    url = args.database_url
    if url is None:
        url = asyncio.run(create_database(name))
    try:
        if args.database_url is None:
            asyncio.run(fill(url, args.battles))
        print("| format | rows | seconds | rows/s | peak RSS | file |\n|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in args.formats.split(","):
                out = Path(tmp) / f"{fmt}.parquet"
                seconds, rss, rows = run_export(url, fmt, out)
                size = out.stat().st_size / 1024 / 1024
                print(f"| {fmt} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | "
                      f"{rss:.0f} MB | {size:.0f} MB |", flush=True)
    finally:
        if args.database_url is None and not args.keep:
            asyncio.run(drop_database(name))
        elif args.keep:
            print(f"kept {url}")


if __name__ == "__main__":
    main()
