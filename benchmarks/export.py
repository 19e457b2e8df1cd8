"""Export benchmark: N stored battles → Parquet, throughput and the exporter's peak memory.

    python -m benchmarks.export [--battles 1000000] [--formats arena,dpo]
        [--variants default,no-languages,scrub-pii,near-duplicates] [--database NAME] [--keep]

Creates a scratch Postgres database, fills it with `chatmux demo-data`'s generator (battles
plus the chat turns, votes, regenerations and edits that come with them), then runs
`chatmux export --format F --out F.parquet` for each format and variant as a child process and
reports rows/s, the child's CPU seconds and peak RSS (from wait4's rusage) and what the
filters removed. Goal: ≥ 20,000 rows/s and < 400 MB. `--database NAME` exports from that
database, filling it first only if it has no battles yet, and keeps it: the next run skips the
~4 minutes of generating. Last, the language detector alone is timed on the distinct prompts
of the arena dump (the cost of a dump where no prompt repeats).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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
# Variant name → (extra CLI arguments, extra environment).
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "no-languages": ([], {"EXPORT_LANGUAGES": ""}),  # no detector: every row "und"
    "scrub-pii": (["--scrub-pii"], {}),
    "near-duplicates": (["--near-duplicates"], {}),
}


def url_of(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def ensure_database(name: str) -> bool:
    """Create database `name` unless it exists; whether it already has judged battles."""
    conn = await asyncpg.connect(SERVER)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
            return False
    finally:
        await conn.close()
    conn = await asyncpg.connect(url_of(name).replace("+asyncpg", ""))
    try:
        if not await conn.fetchval("SELECT to_regclass('battle') IS NOT NULL"):
            return False
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM battle)"))
    finally:
        await conn.close()


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


def run_export(url: str, fmt: str, variant: str, out: Path
               ) -> tuple[float, float, float, int, str]:
    """(seconds, CPU seconds, peak RSS in MB, rows, what was dropped) of one
    `chatmux export` child process."""
    extra_args, extra_env = VARIANTS[variant]
    env = {**os.environ, "DATABASE_URL": url, "EXPORT_SALT": "benchmark", **extra_env}
    started = time.perf_counter()
    child = subprocess.Popen(
        # The demo models are in no catalogue: without --include-restricted every row of
        # theirs would count as restricted (the policy filter runs all the same).
        [sys.executable, "-m", "bot", "export", "--format", fmt, "--out", str(out),
         "--include-restricted", *(["--include-ties"] if fmt in ("arena", "kto") else []),
         *extra_args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output = child.stdout.read().decode() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export {fmt} ({variant}) failed: {output}")
    rows = pq.ParquetFile(out).metadata.num_rows
    left_out = output.strip().partition("; left out: ")[2]  # "3139 exact duplicates, …"
    dropped = "; ".join(re.findall(r"(\d[\d,]* [^,(]*?)(?: \([^)]*\))?(?:, |$)", left_out))
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rows, dropped


def time_detector(arena: Path) -> None:
    """The language tagger alone on the dump's distinct prompts, each tagged once."""
    from storage.exports.language import LanguageTagger
    from storage.exports.options import DEFAULT_LANGUAGES

    column = pq.read_table(arena, columns=["conversation_a"]).column("conversation_a")
    prompts = list({turns[-2]["content"] for turns in column.to_pylist()})
    started = time.perf_counter()
    tag = LanguageTagger(DEFAULT_LANGUAGES)
    built = time.perf_counter() - started
    started = time.process_time()
    for text in prompts:
        tag(text)
    seconds = time.process_time() - started
    print(f"\nlanguage detector ({len(DEFAULT_LANGUAGES)} languages): built in {built:.2f} s; "
          f"{len(prompts):,} distinct prompts in {seconds:.1f} CPU s = "
          f"{1e6 * seconds / len(prompts):.0f} µs each ({len(prompts) / seconds:,.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--formats", default="arena,dpo")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"any of {','.join(VARIANTS)}")
    parser.add_argument("--database", help="export from (and if empty first fill) this "
                        "Postgres database, and keep it for the next run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant {unknown[0]!r}")

    name = args.database or f"chatmux_bench_export_{os.getpid()}"
    url = url_of(name)
    filled = asyncio.run(ensure_database(name))
    try:
        if filled:
            print(f"exporting from {name} as it is (its battles are already stored)")
        else:
            asyncio.run(fill(url, args.battles))
        print("| format | variant | rows | removed | seconds | rows/s | CPU s | peak RSS | file |"
              "\n|---|---|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            arena = None
            for fmt in args.formats.split(","):
                for variant in variants:
                    out = Path(tmp) / f"{fmt}-{variant}.parquet"
                    seconds, cpu, rss, rows, dropped = run_export(url, fmt, variant, out)
                    size = out.stat().st_size / 1024 / 1024
                    print(f"| {fmt} | {variant} | {rows:,} | {dropped or '—'} | {seconds:.1f} | "
                          f"{rows / seconds:,.0f} | {cpu:.1f} | {rss:.0f} MB | {size:.0f} MB |",
                          flush=True)
                    if fmt == "arena" and arena is None:
                        arena = out
                    else:
                        out.unlink()
            if arena is not None:
                time_detector(arena)
    finally:
        if args.database is None and not args.keep:
            asyncio.run(drop_database(name))
        else:
            print(f"kept {url}")


if __name__ == "__main__":
    main()
