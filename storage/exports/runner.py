"""Streams judgements out of the database into a dump file, a batch of conversations at a time.

Memory stays flat: judgements come through a server-side cursor (`yield_per`), each batch of
whole conversations is loaded with one query, and rows are written as they are made. Only the
64-bit fingerprints of rows already written are kept, to drop exact duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from storage.exports.card import Stats, check_folder, write_card
from storage.exports.language import LanguageTagger
from storage.exports.options import ExportOptions, suffix_of
from storage.exports.pii import scrub_pii
from storage.exports.policy import RowPolicy, load_policy
from storage.exports.sources import QUERIES, RowBuilder, excluded_votes_query
from storage.exports.tree import Forest, Tagger, load_forest
from storage.exports.writers import RowWriter, open_writer

FETCH_ROWS = 5000  # judgements per cursor round trip
CONVERSATIONS_PER_BATCH = 1500
WRITE_ROWS = 10_000  # rows per Parquet row group / JSONL write

Progress = Callable[[int, int], None]  # (judgements done, judgements in all)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path  # not created when no row matched
    rows: int
    duplicates: int
    judgements: int
    image_rows_left_out: int = 0  # rows with images (without include_images)
    # Rows left out, by filter: forgotten, no_consent (for likes and regenerate: votes),
    # restricted_model, images, duplicate, near_duplicate. Only filters that removed
    # something are keys.
    removed: dict[str, int] = field(default_factory=dict)
    card: Path | None = None  # the dataset card written next to the dump


async def _rows(connection: AsyncConnection, query: sa.Select) -> AsyncIterator[Sequence[Any]]:
    """Rows of `query` through a server-side cursor, FETCH_ROWS per round trip. On Postgres
    the driver's own cursor: a third of SQLAlchemy's cost per row, for the biggest stream."""
    if connection.dialect.name != "postgresql":
        result = await connection.stream(query.execution_options(yield_per=FETCH_ROWS))
        async for partition in result.partitions():
            for row in partition:
                yield row
        return
    compiled = query.compile(dialect=connection.dialect,
                             compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    async with contextlib.AsyncExitStack() as stack:
        if not raw.is_in_transaction():  # asyncpg cursors live in a transaction
            await stack.enter_async_context(raw.transaction(readonly=True))
        async for record in raw.cursor(str(compiled), *params, prefetch=FETCH_ROWS):
            yield record


async def _conversation_batches(connection: AsyncConnection, query: sa.Select
                                ) -> AsyncIterator[list[Any]]:
    """Rows of `query` (first column: conversation id, ordered by it), cut between
    conversations into batches of at most CONVERSATIONS_PER_BATCH conversations."""
    batch: list[Any] = []
    conversations = 0
    last = None
    async for row in _rows(connection, query):
        if row[0] != last:
            if conversations >= CONVERSATIONS_PER_BATCH:
                yield batch
                batch, conversations = [], 0
            conversations += 1
            last = row[0]
        batch.append(row)
    if batch:
        yield batch


async def _with_forests(cursor: AsyncConnection, trees: AsyncConnection, query: sa.Select,
                        clean: Callable[[str], str] | None, policy: RowPolicy | None = None,
                        tag: Tagger | None = None,
                        prepare: Callable[[list[Any], Forest], Awaitable[None]] | None = None
                        ) -> AsyncIterator[tuple[list[Any], Forest]]:
    """Batches with their conversations, the next batch's conversations already loading
    (and `prepare`d: its questions tagged) while the caller builds rows (the database and
    the tagging process work while Python does)."""
    batches = _conversation_batches(cursor, query)

    async def load_one(batch: list[Any]) -> Forest:
        forest = await load_forest(trees, {r[0] for r in batch}, clean, policy, tag)
        if prepare is not None:
            await prepare(batch, forest)
        return forest

    def load(batch: list[Any]) -> asyncio.Task[Forest]:
        return asyncio.ensure_future(load_one(batch))

    batch = await anext(batches, None)
    loading = load(batch) if batch is not None else None
    try:
        while batch is not None and loading is not None:
            forest = await loading
            following = await anext(batches, None)
            loading = load(following) if following is not None else None
            # Let the task send its query before the caller builds rows without awaiting
            # anything: otherwise it starts only when awaited, and nothing overlaps.
            for _ in range(3):
                await asyncio.sleep(0)
            yield batch, forest
            batch = following
    finally:
        if loading is not None and not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading


async def count_judgements(sessionmaker: async_sessionmaker, options: ExportOptions) -> int:
    total = 0
    async with sessionmaker() as session:
        for source in options.sources:
            query = QUERIES[source](options).order_by(None)
            total += await session.scalar(
                sa.select(sa.func.count()).select_from(query.subquery())
            ) or 0
    return total


async def export(sessionmaker: async_sessionmaker, options: ExportOptions, out: str | Path,
                 progress: Progress | None = None) -> ExportResult:
    """Write the dump `options` describe to `out` (.jsonl, .jsonl.gz or .parquet)."""
    out = Path(out)
    suffix_of(out)  # a wrong file name fails before any query
    check_folder(out)  # and so does a README.md the card would overwrite
    total = await count_judgements(sessionmaker, options) if progress else 0
    stats = Stats(options.format)
    votes_left_out = 0
    clean = scrub_pii if options.scrub_pii else None
    # Built once: loading its models takes a while.
    tag = LanguageTagger(options.languages, background=True)
    near = None
    if options.near_duplicates is not None:
        from storage.exports.near_duplicates import NearDuplicates, prompt_text

        near = NearDuplicates(options.near_duplicates)
    near_duplicates = 0
    seen: set[int] = set()
    pending: list[dict[str, Any]] = []
    writer: RowWriter | None = None  # opened with the first rows: no rows, no file
    rows = duplicates = done = 0

    def flush() -> None:
        nonlocal writer, pending, rows
        if writer is None:
            writer = open_writer(out, options.format)
        stats.add(pending)
        writer.write(pending)
        rows += len(pending)
        pending = []

    try:
        # Two connections: one holds the judgement cursor open, the other loads conversations.
        async with sessionmaker() as cursor_session, sessionmaker() as tree_session:
            cursor = await cursor_session.connection()
            trees = await tree_session.connection()
            policy = await load_policy(trees, options)  # once: consent sets, model policies
            builder = RowBuilder(options, policy)
            if {"likes", "regenerate"} & set(options.sources):
                votes_left_out = await trees.scalar(excluded_votes_query(options)) or 0
            if trees.dialect.name == "postgresql":
                # Hundreds of short indexed lookups: compiling each with JIT costs more than
                # it saves (about 5 ms a query).
                await trees.execute(sa.text("SET LOCAL jit = off"))
            for source in options.sources:
                query = QUERIES[source](options)
                async def prepare(batch: list[Any], forest: Forest, source: str = source
                                  ) -> None:
                    await tag.prefetch(forest, builder.questions(source, batch, forest))

                async for batch, forest in _with_forests(cursor, trees, query, clean, policy,
                                                         tag, prepare):
                    for key, row in builder.rows(source, batch, forest):
                        if key in seen:
                            duplicates += 1
                            continue
                        seen.add(key)
                        if near is not None and near.seen(prompt_text(options.format, row)):
                            near_duplicates += 1
                            continue
                        pending.append(row)
                    if len(pending) >= WRITE_ROWS:
                        flush()
                    done += len(batch)
                    if progress:
                        progress(done, total)
        if pending:
            flush()
    except BaseException:
        if writer is not None:
            writer.close()
            out.unlink(missing_ok=True)
        raise
    finally:
        tag.close()
    removed = dict(builder.removed)
    if votes_left_out:
        removed["no_consent"] = removed.get("no_consent", 0) + votes_left_out
    removed["duplicate"] = duplicates
    removed["near_duplicate"] = near_duplicates
    removed = {k: v for k, v in removed.items() if v}
    card = None
    if writer is not None:
        writer.close()
        card = write_card(out, options, rows, done, stats, builder.policy.used_licences(),
                          removed)
    return ExportResult(out, rows, duplicates, done, builder.image_rows_left_out, removed,
                        card)


def export_in_thread(database_url: str, options: ExportOptions, out: str | Path,
                     progress: Progress | None = None) -> ExportResult:
    """Run an export on its own event loop and connections: for a worker thread, so a bot's
    loop keeps serving while rows are built and written."""
    from storage.db import create_engine, create_sessionmaker

    async def main() -> ExportResult:
        engine = create_engine(database_url, pool_size=2, max_overflow=0) if (
            database_url.startswith("postgresql")) else create_engine(database_url)
        try:
            return await export(create_sessionmaker(engine), options, out, progress)
        finally:
            await engine.dispose()

    return asyncio.run(main())
